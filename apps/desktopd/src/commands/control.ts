/** `desktopd status`, `publish`, `dns`, `egress` and `events`: ask a running daemon over its control socket. */
import type { QueryLogEntry } from "@desktopd/dns";
import type { ForwardInfo } from "@desktopd/portfwd";
import { type EgressRuleInfo, formatEgressRule } from "@desktopd/stack";
import { controlRequest, watchEvents } from "../control/client.js";
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
  leases: { mac: string; ip: string; hostname?: string }[];
  published: ForwardInfo[];
  process?: ProcessStats;
}

function renderStatus(s: DaemonStatus): string {
  const lines = [
    `subnet ${s.ready.subnet}  gateway ${s.ready.gateway}  host ${s.ready.host}  mtu ${s.ready.mtu}`,
  ];
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
  for (const l of s.leases) lines.push(`  ${l.ip}  ${l.mac}${l.hostname ? `  ${l.hostname}` : ""}`);
  lines.push(`published (${s.published.length}):`);
  for (const f of s.published) lines.push(`  ${renderForward(f)}`);
  if (s.process) lines.push(renderProcess(s.process));
  return `${lines.join("\n")}\n`;
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
  return `${f.id} -> ${f.targetIp ?? "?"}:${f.targetPort}  open ${st.open}  in ${st.bytesIn} B  out ${st.bytesOut} B`;
}
