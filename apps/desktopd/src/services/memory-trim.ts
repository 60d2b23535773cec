/**
 * Gives freed memory back to the system once the daemon is quiet.
 *
 * A burst of traffic leaves the daemon's RSS tens of MiB above what it uses, in two places:
 * - V8's old generation holds the burst's garbage (a closed flow's objects, say) until its next
 *   full collection, which an idle process may not run for many seconds;
 * - glibc keeps what Node frees (socket read buffers, frames, the compilers' zones) in its arenas
 *   for reuse until the process ends.
 * Every `periodMs`, when the last period was quiet (little CPU) and RSS has grown since the last
 * time, this runs a full collection and then malloc_trim(0), which returns the free pages. Linux
 * with glibc only: elsewhere (no libc.so.6, another libc) it stays off and says so in its status.
 */
import v8 from "node:v8";
import vm from "node:vm";
import type { Logger } from "@desktopd/core";
import type { Service } from "./service.js";

export interface MemoryTrimOptions {
  /** Default 1 s: memory comes back soon after a burst ends. */
  periodMs?: number;
  /** A period is quiet below this share of one core (default 0.05). */
  quietCpuShare?: number;
  /** The process's RSS in bytes (default `process.memoryUsage.rss`); a seam for tests. */
  readRss?: () => number;
}

export interface MemoryTrimService extends Service {
  status(): { memoryTrim: MemoryTrimStatus };
}

export interface MemoryTrimStatus {
  /** "on", or why it is off. */
  state: string;
  trims: number;
  /** RSS given back by the trims, in bytes (measured around each call). */
  returnedBytes: number;
  /**
   * Periods skipped because RSS could not be read: it takes a file descriptor (/proc/self/stat),
   * and a guest holding thousands of connections can leave none (EMFILE).
   */
  unreadable: number;
}

type Trim = (pad: number) => number;

/**
 * Growth since the last trim below this is not worth a call: a daemon that wakes now and then
 * for a few packets must not trim every period.
 */
const MIN_GROWTH = 4 * 1024 * 1024;

/** Starts at once; libc is bound in the background (the daemon's ready line never waits for it). */
export function startMemoryTrim(
  logger: Logger | undefined,
  options: MemoryTrimOptions = {},
): MemoryTrimService {
  const periodMs = options.periodMs ?? 1000;
  const quiet = options.quietCpuShare ?? 0.05;
  const readRss = options.readRss ?? (() => process.memoryUsage.rss());
  const status: MemoryTrimStatus = { state: "starting", trims: 0, returnedBytes: 0, unreadable: 0 };
  /** RSS now, or undefined (counted) when it cannot be read: a throw in a timer ends the daemon. */
  const rssNow = (): number | undefined => {
    try {
      return readRss();
    } catch {
      status.unreadable++;
      return undefined;
    }
  };
  let trim: Trim | undefined;
  let closed = false;
  loadTrim().then(
    (fn) => {
      trim = fn;
      status.state = "on";
    },
    (error: unknown) => {
      status.state = `off: ${(error as Error).message}`;
      logger?.debug({ err: (error as Error).message }, "memory trim unavailable");
      clearInterval(timer);
    },
  );
  const collect = v8Collector();
  let lastCpu = process.cpuUsage();
  // RSS after the last trim; 0: the first quiet period also returns what starting up freed.
  let trimmedRss = 0;
  const timer = setInterval(() => {
    const cpu = process.cpuUsage(lastCpu);
    lastCpu = process.cpuUsage();
    if (!trim || closed) return;
    const busy = (cpu.user + cpu.system) / 1000 / periodMs;
    const rss = rssNow();
    // Quiet, and grown since the last trim: a daemon idle since then has nothing to give back.
    if (rss === undefined || busy >= quiet || rss < trimmedRss + MIN_GROWTH) return;
    collect?.();
    trim(0);
    status.trims++;
    trimmedRss = rssNow() ?? rss;
    status.returnedBytes += Math.max(0, rss - trimmedRss);
  }, periodMs);
  timer.unref();
  return {
    name: "memory-trim",
    status: () => ({ memoryTrim: { ...status } }),
    close: async () => {
      closed = true;
      clearInterval(timer);
    },
  };
}

/**
 * V8's full collection, or undefined. Node has no API for it: `--expose-gc`, set for a moment,
 * gives a new context a `gc` function (and nothing else changes).
 */
function v8Collector(): (() => void) | undefined {
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc = vm.runInNewContext("gc") as unknown;
    return typeof gc === "function" ? () => gc() : undefined;
  } catch {
    return undefined;
  } finally {
    v8.setFlagsFromString("--no-expose-gc");
  }
}

async function loadTrim(): Promise<Trim> {
  if (process.platform !== "linux") throw new Error(`not on ${process.platform}`);
  const koffi = (await import("koffi")).default;
  const libc = koffi.load("libc.so.6");
  return libc.func("int malloc_trim(size_t pad)") as unknown as Trim;
}
