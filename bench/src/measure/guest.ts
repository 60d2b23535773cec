/** Runs one of the bench/guest/*.mjs scripts inside the netns and parses its one-line JSON report. */
import { join } from "node:path";
import { describeExit, run } from "../proc.js";

/**
 * Seconds a connection-rate or RR script runs unmeasured first: the client's and the peer's
 * compilers settle, so the figure is a running peer's (a fresh node process, desktopd's or the
 * guest client's, spends its first second compiling).
 */
export const WARMUP_SECONDS = 1;

export async function runGuestScript<T>(
  root: string,
  netns: string,
  script: string,
  args: readonly (string | number)[],
  timeoutMs: number,
): Promise<T> {
  const path = join(root, "bench/guest", script);
  const r = await run("ip", ["netns", "exec", netns, process.execPath, path, ...args.map(String)], timeoutMs);
  const last = r.stdout.trim().split("\n").pop() ?? "";
  let report: (T & { error?: string }) | undefined;
  try {
    report = JSON.parse(last) as T & { error?: string };
  } catch {
    throw new Error(`${script}: ${describeExit(r)}`);
  }
  if (report.error) throw new Error(`${script}: ${report.error}`);
  return report;
}
