/** `desktopd status` and `desktopd publish ls|add|rm`: ask a running daemon over its control socket. */
import type { QueryLogEntry } from "@desktopd/dns";
import type { ForwardInfo } from "@desktopd/portfwd";
import { controlRequest, watchEvents } from "../control/client.js";
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
  return `${lines.join("\n")}\n`;
}

function renderForward(f: ForwardInfo): string {
  const st = f.stats;
  return `${f.id} -> ${f.targetIp ?? "?"}:${f.targetPort}  open ${st.open}  in ${st.bytesIn} B  out ${st.bytesOut} B`;
}
