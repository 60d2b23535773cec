/** One dnsperf run against one server, and the figure it reports. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "../proc.js";

export interface QpsFigure {
  qps: number | null;
  /** Queries dnsperf counted as lost (timed out): a server that drops is not a fast one. */
  lost: number | null;
  error?: string;
}

/** Parses "Queries per second:  12345.6" and "Queries lost: 0 (0.00%)". */
export function parseDnsperf(out: string): QpsFigure {
  const qps = /Queries per second:\s+([\d.]+)/.exec(out)?.[1];
  const lost = /Queries lost:\s+(\d+)/.exec(out)?.[1];
  if (qps === undefined)
    return { qps: null, lost: null, error: out.trim().split("\n").slice(-3).join(" | ") };
  return { qps: Number(qps), lost: lost === undefined ? null : Number(lost) };
}

export async function dnsperf(
  dir: string,
  host: string,
  port: number,
  query: string,
  seconds: number,
): Promise<QpsFigure> {
  const file = join(dir, `${query.replace(/\W+/g, "_")}.txt`);
  writeFileSync(file, `${query}\n`);
  // 4 clients, up to 100 queries outstanding: enough to keep one server busy on a small machine.
  const r = await run(
    "dnsperf",
    ["-s", host, "-p", String(port), "-d", file, "-l", String(seconds), "-c", "4", "-q", "100"],
    (seconds + 30) * 1000,
  );
  if (r.timedOut) return { qps: null, lost: null, error: "dnsperf timed out" };
  return parseDnsperf(r.stdout + r.stderr);
}
