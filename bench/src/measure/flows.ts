/**
 * Memory per flow: `guest/flows.mjs` opens {@link flowCount} TCP connections from the guest to a
 * host server on 127.0.0.1 and keeps them idle; the peer's RSS (and desktopd's V8 heap) before
 * and after gives the idle figures. Then every connection writes 64 KiB at a time for a few
 * seconds, all at once, and the peak RSS (and heap) during that is the busy figure.
 */
import { join } from "node:path";
import { Daemon, sleep } from "../proc.js";
import { type Figure, failed } from "./figure.js";
import { type HostServer, startAcceptCloseServer } from "./hostserver.js";
import { resetPeakRss, statusMiB } from "./rss.js";

export const flowCount = 1000;

/** The guest's open-file limit for the script (the default soft limit, 1024, is too few). */
const guestFdLimit = 8192;

/**
 * Quiet time before each reading, for the peer to settle: before the flows, after the traffic of
 * the rows above, and again once they are open. Longer than two of desktopd's memory-trim
 * periods (1 s each), so that its collection after a quiet second has run: the garbage of the
 * rows above, or of opening the flows, is not what a flow costs. Other peers only wait.
 */
const settleMs = 2500;

/** The figures, under their metric keys: per idle flow is (after − before) / flowCount, in KiB. */
const flowMetricKeys = [
  "flowsIdleRss",
  "flowsPerFlowRss",
  "flowsBusyRss",
  "flowsIdleHeap",
  "flowsPerFlowHeap",
  "flowsBusyHeap",
] as const;
export type FlowFigures = Record<(typeof flowMetricKeys)[number], Figure>;

interface OpenReport {
  opened: number;
  errors: number;
  seconds: number;
  firstError?: string;
}

interface BusyReport {
  bytes: number;
  errors: number;
  seconds: number;
}

/** What the peer's process is measured by: its pid, and its V8 heap in bytes where it has one. */
export interface FlowTarget {
  pid: number;
  heapUsed?: () => Promise<number>;
}

export async function measureFlows(
  root: string,
  netns: string,
  hostAddress: string,
  target: FlowTarget,
  seconds: number,
): Promise<FlowFigures> {
  let server: HostServer | undefined;
  let guest: Daemon | undefined;
  try {
    server = await startAcceptCloseServer(4);
    const mib = () => statusMiB(target.pid, "VmRSS");
    const heapMiB = async () => (target.heapUsed ? (await target.heapUsed()) / 2 ** 20 : undefined);
    await sleep(settleMs);
    const before = { rss: await mib(), heap: await heapMiB() };
    const script = join(root, "bench/guest/flows.mjs");
    const args = [hostAddress, server.port, flowCount, seconds].map(String);
    guest = new Daemon(
      "ip",
      [
        "netns",
        "exec",
        netns,
        "sh",
        "-c",
        `ulimit -n ${guestFdLimit} && exec "$0" "$@"`,
        process.execPath,
        script,
        ...args,
      ],
      ["pipe", "pipe", "pipe"],
    );
    const opened = await report<OpenReport>(guest, 60_000, "opening");
    if (opened.opened < flowCount) {
      const why = opened.firstError ? `: ${opened.firstError}` : "";
      throw new Error(`${opened.opened} of ${flowCount} connections opened${why}`);
    }
    await sleep(settleMs);
    const idle = { rss: await mib(), heap: await heapMiB() };
    const perFlow = (a: number, b: number) => ((a - b) * 1024) / flowCount;
    const openDetail = { openSeconds: opened.seconds, beforeMiB: before.rss };

    // Busy: the peak over the phase, VmHWM reset at its start (sampled VmRSS where that is refused).
    const reset = await resetPeakRss(target.pid);
    const peak = { rss: idle.rss, heap: idle.heap, samples: 0 };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [rss, heap] = await Promise.all([mib(), heapMiB()]);
        peak.rss = Math.max(peak.rss, rss);
        if (heap !== undefined) peak.heap = Math.max(peak.heap ?? 0, heap);
        peak.samples++;
        await sleep(100);
      }
    })();
    const done = report<BusyReport>(guest, (seconds + 30) * 1000, "busy");
    guest.child.stdin?.write("busy\n");
    let busy: BusyReport;
    try {
      busy = await done;
    } finally {
      sampling = false;
      await sampler.catch(() => {});
    }
    const busyRss = reset ? Math.max(peak.rss, await statusMiB(target.pid, "VmHWM")) : peak.rss;
    const busyDetail = { mibWritten: busy.bytes / 2 ** 20, seconds: busy.seconds, samples: peak.samples };
    const noHeap = failed("no V8 heap reading");
    const heapFigure = (v: number | undefined, detail?: Record<string, number>): Figure =>
      v === undefined ? noHeap : { value: v, ...(detail ? { detail } : {}) };
    return {
      flowsIdleRss: { value: idle.rss, detail: openDetail },
      flowsPerFlowRss: { value: perFlow(idle.rss, before.rss), detail: openDetail },
      flowsBusyRss: { value: busyRss, detail: busyDetail },
      flowsIdleHeap: heapFigure(idle.heap),
      flowsPerFlowHeap:
        idle.heap === undefined || before.heap === undefined
          ? noHeap
          : { value: perFlow(idle.heap, before.heap) },
      flowsBusyHeap: heapFigure(peak.heap, busyDetail),
    };
  } catch (err) {
    const f = failed(err);
    return Object.fromEntries(flowMetricKeys.map((k) => [k, f])) as FlowFigures;
  } finally {
    await guest?.stop(2000);
    await server?.close();
  }
}

/** The script's next JSON line; throws its error, or when it exits or is silent for `timeoutMs`. */
async function report<T>(guest: Daemon, timeoutMs: number, phase: string): Promise<T> {
  const line = await guest.waitForLine((l) => l.startsWith("{"), timeoutMs, `guest flows.mjs (${phase})`);
  const r = JSON.parse(line) as T & { error?: string; firstError?: string };
  if (r.error) throw new Error(`flows.mjs: ${r.error}${r.firstError ? ` (${r.firstError})` : ""}`);
  return r;
}
