/** `desktopd status`, `publish`, `dns`, `egress` and `events`: ask a running daemon over its control socket. */
import type { QueryLogEntry } from "@desktopd/dns";
import type { ForwardInfo } from "@desktopd/portfwd";
import { DEFAULT_GATEWAY, guestCommand } from "@desktopd/ssh-agent";
import { type EgressRuleInfo, formatEgressRule } from "@desktopd/stack";
import { controlRequest, controlText, watchEvents } from "../control/client.js";
import { ControlError, InvalidOptionError } from "../errors.js";
import type { ProcessStats } from "../process-stats.js";
import type { CliIo } from "./io.js";

export interface ControlCommandOptions {
  control: string;
  json?: boolean;
}

export async function statusCommand(o: ControlCommandOptions, io: CliIo): Promise<number> {
  const status = (await controlRequest(o.control, "GET", "/v1/status")) as DaemonStatus;
  if (o.json) io.out(`${JSON.stringify(status, null, 2)}\n`);
  else io.out(renderStatus(status));
  return 0;
}

export async function publishCommand(
  action: "ls" | "add" | "rm",
  arg: string | undefined,
  o: ControlCommandOptions & { closeConnections?: boolean },
  io: CliIo,
): Promise<number> {
  let forwards: ForwardInfo[];
  if (action === "add")
    forwards = (await controlRequest(o.control, "POST", "/v1/publish", { spec: arg })) as ForwardInfo[];
  else if (action === "rm") {
    const query = o.closeConnections ? "?close=1" : "";
    forwards = (await controlRequest(
      o.control,
      "DELETE",
      `/v1/publish/${encodeURIComponent(arg ?? "")}${query}`,
    )) as ForwardInfo[];
  } else forwards = (await controlRequest(o.control, "GET", "/v1/publish")) as ForwardInfo[];
  if (o.json) io.out(`${JSON.stringify(forwards, null, 2)}\n`);
  else io.out(forwards.map((f) => `${renderForward(f)}\n`).join(""));
  return 0;
}

/** A name in the DNS registry, as GET /v1/dns/names lists it (ttl: seconds left, null: until removed). */
interface RegisteredName {
  name: string;
  address: string;
  ttl: number | null;
}

export async function dnsNamesCommand(
  action: "ls" | "add" | "rm",
  args: { name?: string; address?: string; ttl?: number },
  o: ControlCommandOptions,
  io: CliIo,
): Promise<number> {
  let names: RegisteredName[];
  if (action === "add") {
    const body = {
      name: args.name,
      address: args.address,
      ...(args.ttl === undefined ? {} : { ttl: args.ttl }),
    };
    names = (await controlRequest(o.control, "POST", "/v1/dns/names", body)) as RegisteredName[];
  } else if (action === "rm") {
    const query = args.address ? `?address=${encodeURIComponent(args.address)}` : "";
    names = (await controlRequest(
      o.control,
      "DELETE",
      `/v1/dns/names/${encodeURIComponent(args.name ?? "")}${query}`,
    )) as RegisteredName[];
  } else names = (await controlRequest(o.control, "GET", "/v1/dns/names")) as RegisteredName[];
  if (o.json) io.out(`${JSON.stringify(names, null, 2)}\n`);
  else
    io.out(names.map((n) => `${n.name} ${n.address}${n.ttl === null ? "" : `  ttl ${n.ttl}s`}\n`).join(""));
  return 0;
}

export async function dnsLogCommand(
  o: ControlCommandOptions & { limit?: number },
  io: CliIo,
): Promise<number> {
  const query = o.limit === undefined ? "" : `?limit=${o.limit}`;
  const log = (await controlRequest(o.control, "GET", `/v1/dns/log${query}`)) as QueryLogEntry[];
  if (o.json) io.out(`${JSON.stringify(log, null, 2)}\n`);
  else {
    for (const q of log) {
      const answer = q.answers.length > 0 ? q.answers.join(", ") : q.rcode;
      const how = `${q.layer}${q.cached ? " (cached)" : ""} ${q.latencyMs.toFixed(1)} ms`;
      io.out(
        `${new Date(q.time).toISOString()} ${q.client} ${q.name} ${q.type} → ${answer}  [${how}]${q.error ? `  ${q.error}` : ""}\n`,
      );
    }
  }
  return 0;
}

interface EgressState {
  hostLoopback: boolean;
  rules: EgressRuleInfo[];
  counters: { allowed: number; denied: number; deniedBy: Record<string, number> };
}

export async function egressCommand(
  action: "ls" | "add" | "rm",
  args: { rule?: string; id?: string; position?: number },
  o: ControlCommandOptions,
  io: CliIo,
): Promise<number> {
  const show = (r: EgressRuleInfo) =>
    `${String(r.id).padStart(3)}  ${formatEgressRule(r)}  (${r.matched} flows)\n`;
  if (action === "add") {
    const body = { rule: args.rule, ...(args.position === undefined ? {} : { position: args.position - 1 }) };
    const added = (await controlRequest(o.control, "POST", "/v1/egress", body)) as EgressRuleInfo;
    io.out(o.json ? `${JSON.stringify(added, null, 2)}\n` : show(added));
    return 0;
  }
  if (action === "rm") {
    const removed = (await controlRequest(
      o.control,
      "DELETE",
      `/v1/egress/${encodeURIComponent(args.id ?? "")}`,
    )) as EgressRuleInfo;
    io.out(o.json ? `${JSON.stringify(removed, null, 2)}\n` : show(removed));
    return 0;
  }
  const state = (await controlRequest(o.control, "GET", "/v1/egress")) as EgressState;
  if (o.json) {
    io.out(`${JSON.stringify(state, null, 2)}\n`);
    return 0;
  }
  for (const r of state.rules) io.out(show(r));
  const denied = Object.entries(state.counters.deniedBy)
    .map(([by, n]) => `${by} ${n}`)
    .join(", ");
  io.out(
    `then: the host address ${state.hostLoopback ? "reaches" : "does not reach"} the host's loopback; ` +
      "other loopback addresses and the guest subnet are refused; the rest goes out\n" +
      `flows allowed ${state.counters.allowed}, refused ${state.counters.denied}${denied ? ` (${denied})` : ""}\n`,
  );
  return 0;
}

/**
 * `desktopd events`: what happens in the daemon, a line each, until it stops or we are
 * interrupted (`signal`). With --json the daemon's own lines.
 */
export async function eventsCommand(
  o: ControlCommandOptions,
  io: CliIo,
  signal?: AbortSignal,
): Promise<number> {
  await watchEvents(
    o.control,
    (line) => {
      if (o.json) {
        io.out(`${line}\n`);
        return;
      }
      const { type, time, ...fields } = JSON.parse(line) as { type: string; time: number };
      const rest = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
      io.out(`${new Date(time).toISOString()} ${type} ${rest}\n`);
    },
    signal,
  );
  return 0;
}

/** What GET /v1/status answers (see daemon.ts). */
export interface DaemonStatus {
  ready: Record<string, unknown>;
  links: {
    name: string;
    macs: string[];
    stats: { framesIn: number; framesOut: number; drops: Record<string, number> };
  }[];
  leases: { mac: string; ip: string; hostname?: string; ipv6?: string[] }[];
  /** The IPv6 addressing, unless --no-ipv6. */
  ipv6?: { prefix: string; gateway: string; gatewayLinkLocal: string; hostAddress: string };
  published: ForwardInfo[];
  proxy?: ProxyInfo;
  sshAgent?: SshAgentInfo;
  autoforward?: { enabled: boolean; reporter: string | null; forwards: { state: string }[] };
  process?: ProcessStats;
}

/** The status of the SSH agent relay (see services/ssh-agent.ts). */
interface SshAgentInfo {
  listen: string | null;
  hostSocket: string | null;
  signOnly: boolean;
  keys: string[] | null;
  counters: { connections: number; requests: number; signatures: number; refused: Record<string, number> };
}

/** What GET /v1/proxy answers (see services/proxy.ts). */
interface ProxyInfo {
  listen: string | null;
  names: string[];
  source: string;
  summary: string;
  transparentPorts: number[];
  transparentActive: boolean;
  socks5: string | null;
}

function renderStatus(s: DaemonStatus): string {
  const lines = [
    `subnet ${s.ready.subnet}  gateway ${s.ready.gateway}  host ${s.ready.host}  mtu ${s.ready.mtu}`,
  ];
  if (s.ipv6) {
    lines.push(
      `ipv6 ${s.ipv6.prefix}  gateway ${s.ipv6.gateway} (${s.ipv6.gatewayLinkLocal})  host ${s.ipv6.hostAddress}`,
    );
  }
  lines.push(`guest links (${s.links.length}):`);
  for (const l of s.links) {
    const drops = Object.entries(l.stats.drops)
      .map(([k, v]) => `${k}=${v}`)
      .join(",");
    lines.push(
      `  ${l.name}  mac ${l.macs.join(",") || "-"}  frames in ${l.stats.framesIn} out ${l.stats.framesOut}${drops ? `  drops ${drops}` : ""}`,
    );
  }
  lines.push(`leases (${s.leases.length}):`);
  for (const l of s.leases) {
    const six = l.ipv6?.length ? `  ${l.ipv6.join(" ")}` : "";
    lines.push(`  ${l.ip}${six}  ${l.mac}${l.hostname ? `  ${l.hostname}` : ""}`);
  }
  lines.push(`published (${s.published.length}):`);
  for (const f of s.published) lines.push(`  ${renderForward(f)}`);
  if (s.proxy) lines.push(renderProxy(s.proxy));
  if (s.sshAgent) lines.push(renderSshAgent(s.sshAgent));
  if (s.autoforward) {
    const a = s.autoforward;
    const count = (state: string) => a.forwards.filter((f) => f.state === state).length;
    lines.push(
      a.enabled
        ? `automatic forwards ${count("published")} published, ${count("waiting")} waiting; VMs report to ${a.reporter ?? "-"}`
        : "automatic forwards off",
    );
  }
  if (s.process) lines.push(renderProcess(s.process));
  return `${lines.join("\n")}\n`;
}

function renderSshAgent(a: SshAgentInfo): string {
  if (!a.listen) return "ssh agent: off (no SSH_AUTH_SOCK; --ssh-auth-sock PATH)";
  const refused = Object.values(a.counters.refused).reduce((x, y) => x + y, 0);
  const policy = [a.signOnly ? "sign-only" : "", a.keys ? `keys ${a.keys.join(",")}` : ""]
    .filter(Boolean)
    .join(", ");
  return (
    `ssh agent ${a.listen} -> ${a.hostSocket}${policy ? ` (${policy})` : ""}  connections ${a.counters.connections}` +
    `  requests ${a.counters.requests}  signatures ${a.counters.signatures}  refused ${refused}`
  );
}

/** The guest side of the agent: the daemon's gateway when one answers, else the default. */
export async function sshAgentGuestCommand(
  o: { control: string; socket?: string; mode?: string },
  io: CliIo,
): Promise<number> {
  if (o.mode !== undefined && !/^[0-7]{3,4}$/.test(o.mode)) {
    throw new InvalidOptionError(`--mode: "${o.mode}" is not octal permissions (e.g. 660)`);
  }
  let host = DEFAULT_GATEWAY;
  try {
    const status = (await controlRequest(o.control, "GET", "/v1/status")) as DaemonStatus;
    host = String(status.ready.gateway ?? DEFAULT_GATEWAY);
  } catch (error) {
    if (!ControlError.isInstance(error)) throw error;
    io.err(`desktopd: no daemon answers at ${o.control}; assuming the default gateway ${DEFAULT_GATEWAY}\n`);
  }
  const options = {
    host,
    ...(o.socket ? { socket: o.socket } : {}),
    ...(o.mode ? { mode: Number.parseInt(o.mode, 8) } : {}),
  };
  const args = [
    `--host ${host}:6022`,
    ...(o.socket ? [`--socket ${o.socket}`] : []),
    ...(o.mode ? [`--mode ${o.mode}`] : []),
  ].join(" ");
  io.out(
    `# without Node (socat):\n${guestCommand(options)}\n` +
      `# with Node (npx -p @desktopd/ssh-agent, or the single file dist/guest-cli.js of that package):\n` +
      `desktopd-ssh-agent guest ${args}\n` +
      `# then, in the guest or a container mounting the socket:\nexport SSH_AUTH_SOCK=${o.socket ?? "/run/host-services/ssh-auth.sock"}\n`,
  );
  return 0;
}

function renderProxy(p: ProxyInfo): string {
  const transparent = p.transparentActive ? `ports ${p.transparentPorts.join(",")}` : "off";
  return (
    `proxy ${p.listen ?? "-"} (${p.names.join(", ")})  upstream ${p.summary} [${p.source}]` +
    `  transparent ${transparent}${p.socks5 ? `  socks5 ${p.socks5}` : ""}`
  );
}

export async function proxyCommand(
  action: "get" | "set" | "unset" | "env",
  args: { upstream?: string | undefined; noProxy?: string | undefined; pac?: string | undefined },
  o: ControlCommandOptions,
  io: CliIo,
): Promise<number> {
  if (action === "env") {
    const env = (await controlRequest(o.control, "GET", "/v1/proxy/env")) as Record<string, string>;
    if (o.json) io.out(`${JSON.stringify(env, null, 2)}\n`);
    // KEY=VALUE lines: `docker run --env-file`, or `export $(desktopd proxy env)` in a shell.
    else
      io.out(
        Object.entries(env)
          .map(([k, v]) => `${k}=${v}\n`)
          .join(""),
      );
    return 0;
  }
  const info = (
    action === "set"
      ? await controlRequest(o.control, "PUT", "/v1/proxy", {
          ...(args.upstream === undefined ? {} : { upstream: args.upstream }),
          ...(args.pac === undefined ? {} : { pac: args.pac }),
          ...(args.noProxy === undefined ? {} : { noProxy: args.noProxy }),
        })
      : action === "unset"
        ? await controlRequest(o.control, "DELETE", "/v1/proxy")
        : await controlRequest(o.control, "GET", "/v1/proxy")
  ) as ProxyInfo;
  io.out(o.json ? `${JSON.stringify(info, null, 2)}\n` : `${renderProxy(info)}\n`);
  return 0;
}

function renderProcess(p: ProcessStats): string {
  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  return (
    `process ${p.pid}  up ${p.uptimeSeconds} s  rss ${mib(p.rss)}  heap ${mib(p.heapUsed)}/${mib(p.heapTotal)}` +
    `  external ${mib(p.external)}  fds ${p.fds ?? "?"}  active handles ${p.activeResources}`
  );
}

function renderForward(f: ForwardInfo): string {
  const st = f.stats;
  const label = f.label ? `  [${f.label}]` : "";
  const target = f.targetIp?.includes(":") ? `[${f.targetIp}]` : (f.targetIp ?? "?");
  return `${f.id} -> ${target}:${f.targetPort}${label}  open ${st.open}  in ${st.bytesIn} B  out ${st.bytesOut} B`;
}

interface AutoforwardInfo {
  enabled: boolean;
  reporter: string | null;
  guestCommand: string | null;
  rules: { id: number; rule: string }[];
  forwards: {
    guestIp: string;
    target?: string;
    protocol: string;
    guestPort: number;
    hostIp: string;
    hostPort: number;
    state: string;
    problem?: string;
  }[];
}

export async function autoforwardCommand(
  action: "ls" | "add" | "rm" | "guest-command",
  args: { rule?: string; id?: string; position?: number },
  o: ControlCommandOptions,
  io: CliIo,
): Promise<number> {
  if (action === "add") {
    const body = { rule: args.rule, ...(args.position === undefined ? {} : { position: args.position - 1 }) };
    const added = (await controlRequest(o.control, "POST", "/v1/autoforward", body)) as {
      id: number;
      rule: string;
    };
    io.out(
      o.json ? `${JSON.stringify(added, null, 2)}\n` : `${String(added.id).padStart(3)}  ${added.rule}\n`,
    );
    return 0;
  }
  if (action === "rm") {
    const removed = (await controlRequest(
      o.control,
      "DELETE",
      `/v1/autoforward/${encodeURIComponent(args.id ?? "")}`,
    )) as {
      id: number;
      rule: string;
    };
    io.out(o.json ? `${JSON.stringify(removed, null, 2)}\n` : `removed ${removed.id}  ${removed.rule}\n`);
    return 0;
  }
  const info = (await controlRequest(o.control, "GET", "/v1/autoforward")) as AutoforwardInfo;
  if (action === "guest-command") {
    io.out(`${info.guestCommand ?? ""}\n`);
    return 0;
  }
  if (o.json) {
    io.out(`${JSON.stringify(info, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `automatic forwarding ${info.enabled ? "on" : "off"}; VMs report to ${info.reporter ?? "-"}`,
  ];
  lines.push(`rules (${info.rules.length}, first match wins; then: same port on 127.0.0.1):`);
  for (const r of info.rules) lines.push(`${String(r.id).padStart(3)}  ${r.rule}`);
  lines.push(`forwards (${info.forwards.length}):`);
  for (const f of info.forwards) {
    const host = f.hostIp.includes(":") ? `[${f.hostIp}]` : f.hostIp;
    lines.push(
      `  ${f.protocol}/${host}:${f.hostPort} -> ${f.target?.includes(":") ? `[${f.target}]` : (f.target ?? f.guestIp)}:${f.guestPort}  ${f.state}${f.problem ? `: ${f.problem}` : ""}`,
    );
  }
  io.out(`${lines.join("\n")}\n`);
  return 0;
}

/** One open flow as GET /v1/flows lists it. */
interface FlowRow {
  protocol: string;
  guest: string;
  remote: string;
  state: string;
  bytesFromGuest: number;
  bytesToGuest: number;
  ageMs: number;
  idleMs: number;
  service: string;
  direction?: string;
}

export async function flowsCommand(o: ControlCommandOptions, io: CliIo): Promise<number> {
  const flows = (await controlRequest(o.control, "GET", "/v1/flows")) as FlowRow[];
  if (o.json) {
    io.out(`${JSON.stringify(flows, null, 2)}\n`);
    return 0;
  }
  const rows = flows.map((f) => [
    f.protocol,
    f.direction === "inbound" ? `${f.remote} → ${f.guest}` : `${f.guest} → ${f.remote}`,
    f.state,
    f.service,
    bytes(f.bytesFromGuest),
    bytes(f.bytesToGuest),
    duration(f.ageMs),
    duration(f.idleMs),
  ]);
  io.out(table(["PROTO", "FLOW", "STATE", "SERVICE", "FROM GUEST", "TO GUEST", "AGE", "IDLE"], rows));
  io.out(`${flows.length} flow${flows.length === 1 ? "" : "s"}\n`);
  return 0;
}

export async function metricsCommand(o: { control: string }, io: CliIo): Promise<number> {
  io.out(await controlText(o.control, "/metrics"));
  return 0;
}

interface ReloadAnswer {
  note?: string;
  changed: string[];
  applied: string[];
  restartNeeded: string[];
  problems: string[];
}

export async function reloadCommand(o: ControlCommandOptions, io: CliIo): Promise<number> {
  const report = (await controlRequest(o.control, "POST", "/v1/reload")) as ReloadAnswer;
  if (o.json) {
    io.out(`${JSON.stringify(report, null, 2)}\n`);
    return report.problems.length > 0 ? 1 : 0;
  }
  if (report.note) io.out(`${report.note}\n`);
  else if (report.changed.length === 0 && report.problems.length === 0) io.out("reloaded: nothing changed\n");
  if (report.applied.length > 0) io.out(`applied: ${report.applied.join(", ")}\n`);
  if (report.restartNeeded.length > 0)
    io.out(`needs a restart to take effect: ${report.restartNeeded.join(", ")}\n`);
  for (const p of report.problems) io.err(`desktopd: ${p}\n`);
  return report.problems.length > 0 ? 1 : 0;
}

/** `desktopd ls`: every control socket in the runtime directory that a live daemon answers on. */
export async function lsCommand(dir: string, o: { json?: boolean }, io: CliIo): Promise<number> {
  const { readdirSync } = await import("node:fs");
  const { join } = await import("node:path");
  let names: string[] = [];
  try {
    names = readdirSync(dir).filter((n) => /^control(-.+)?\.sock$/.test(n));
  } catch {
    // No runtime directory: no daemon has run.
  }
  const found: {
    control: string;
    pid?: number;
    netns?: string;
    qemu?: string[];
    links: number;
    published: number;
  }[] = [];
  // The default first, then the others by name.
  names.sort((a, b) => (a === "control.sock" ? -1 : b === "control.sock" ? 1 : a.localeCompare(b)));
  for (const name of names) {
    const path = join(dir, name);
    const status = (await controlRequest(path, "GET", "/v1/status").catch(() => undefined)) as
      | DaemonStatus
      | undefined;
    if (!status) continue;
    found.push({
      control: path,
      ...(status.process ? { pid: status.process.pid } : {}),
      ...(typeof status.ready.netns === "string" ? { netns: status.ready.netns } : {}),
      ...(Array.isArray(status.ready.qemu) ? { qemu: status.ready.qemu as string[] } : {}),
      links: status.links.length,
      published: status.published.length,
    });
  }
  if (o.json) io.out(`${JSON.stringify(found, null, 2)}\n`);
  else if (found.length === 0) io.out(`no desktopd serves a control socket in ${dir}\n`);
  else
    io.out(
      table(
        ["CONTROL", "PID", "NETNS", "QEMU", "LINKS", "PUBLISHED"],
        found.map((d) => [
          d.control,
          String(d.pid ?? "?"),
          d.netns ?? "-",
          d.qemu?.join(",") || "-",
          String(d.links),
          String(d.published),
        ]),
      ),
    );
  return 0;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `${cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd()}\n`;
  return [header, ...rows].map(line).join("");
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`;
}
