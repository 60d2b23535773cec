/**
 * The memory trim service against glibc's real malloc_trim and V8's real collector: memory Node
 * freed but glibc kept (holes between live buffers), and garbage the old generation still holds,
 * go back once the daemon is quiet, and never while it is busy.
 */
import v8 from "node:v8";
import vm from "node:vm";
import { afterEach, describe, expect, it } from "vitest";
import { type MemoryTrimService, startMemoryTrim } from "../src/services/memory-trim.js";

v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

/** Touches ~`mib` MiB of malloc'd buffers and keeps one in ten: the rest is freed inside glibc's heap. */
function fragment(mib: number): Buffer[] {
  const all: Buffer[] = [];
  for (let i = 0; i < mib * 32; i++) all.push(Buffer.allocUnsafeSlow(32 * 1024).fill(i & 0xff));
  const kept = all.filter((_, i) => i % 10 === 0);
  all.length = 0;
  gc();
  return kept;
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

const linux = process.platform === "linux";
if (!linux) console.warn("memory-trim tests SKIPPED: malloc_trim is glibc on Linux only");

describe.skipIf(!linux)("memory trim service", () => {
  let service: MemoryTrimService | undefined;
  afterEach(async () => {
    await service?.close();
    service = undefined;
  });

  /** Started and bound to libc, or the test skipped (loudly) on a Linux without glibc. */
  async function started(periodMs: number, skip: (note: string) => void): Promise<MemoryTrimService> {
    const s = startMemoryTrim(undefined, { periodMs });
    service = s;
    await until(() => s.status().memoryTrim.state !== "starting", 5000);
    const { state } = s.status().memoryTrim;
    if (state.startsWith("off")) {
      console.warn(`memory-trim test SKIPPED: ${state}`);
      skip(state);
    }
    expect(state).toBe("on");
    return s;
  }

  it("gives freed native memory back once the daemon is quiet", async (ctx) => {
    const kept = fragment(64);
    const s = await started(300, (note) => ctx.skip(note));
    expect(await until(() => s.status().memoryTrim.trims > 0, 5000)).toBe(true);
    // Most of the ~58 MiB freed between the kept buffers left the process.
    expect(s.status().memoryTrim.returnedBytes).toBeGreaterThan(16 * 1024 * 1024);
    expect(kept.every((b, i) => b[0] === ((i * 10) & 0xff))).toBe(true);
  });

  it("collects the garbage V8's old generation holds before trimming", async (ctx) => {
    // A burst's leftovers: objects that lived long enough to be promoted, then let go.
    let burst: object[] | undefined = Array.from({ length: 300_000 }, (_, i) => ({
      i,
      name: `flow ${i}`,
      at: [i],
    }));
    gc();
    expect(burst.length).toBe(300_000);
    burst = undefined;
    // Nothing collects them by itself in the next seconds of a quiet process.
    const before = v8.getHeapStatistics().used_heap_size;
    const s = await started(300, (note) => ctx.skip(note));
    expect(await until(() => s.status().memoryTrim.trims > 0, 5000)).toBe(true);
    expect(before - v8.getHeapStatistics().used_heap_size).toBeGreaterThan(16 * 1024 * 1024);
  });

  it("does not trim while the daemon is busy", async (ctx) => {
    const kept = fragment(16);
    const s = await started(200, (note) => ctx.skip(note));
    // Busy: the CPU is spent in every period, in slices the timer can still run between.
    const busyUntil = Date.now() + 1200;
    while (Date.now() < busyUntil) {
      const slice = Date.now() + 40;
      while (Date.now() < slice) Math.sqrt(Math.random());
      await new Promise((r) => setImmediate(r));
    }
    expect(s.status().memoryTrim.trims).toBe(0);
    // Quiet again: now it trims.
    expect(await until(() => s.status().memoryTrim.trims > 0, 5000)).toBe(true);
    expect(kept.length).toBe(Math.ceil((16 * 32) / 10));
  });

  it("skips and counts a period whose RSS cannot be read, instead of ending the daemon", async (ctx) => {
    // What process.memoryUsage.rss() throws once a guest's connections took every descriptor.
    const emfile = Object.assign(new Error("EMFILE: too many open files, uv_resident_set_memory"), {
      code: "EMFILE",
    });
    const s = startMemoryTrim(undefined, {
      periodMs: 50,
      readRss: () => {
        throw emfile;
      },
    });
    service = s;
    await until(() => s.status().memoryTrim.state !== "starting", 5000);
    if (s.status().memoryTrim.state !== "on") ctx.skip(s.status().memoryTrim.state);
    // A throw in the timer would be an uncaught exception: vitest fails the run on it.
    expect(await until(() => s.status().memoryTrim.unreadable >= 3, 5000)).toBe(true);
    expect(s.status().memoryTrim.trims).toBe(0);
  });
});
