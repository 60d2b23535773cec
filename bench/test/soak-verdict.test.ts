import { describe, expect, it } from "vitest";
import { judge, type MetricSpec, type Point, theilSen } from "../src/soak/verdict.js";

const heap: MetricSpec = { key: "heapUsed", label: "heap used", unit: "MiB", rel: 0.2, abs: 8 };
const fds: MetricSpec = { key: "fds", label: "open fds", unit: "count", rel: 0.1, abs: 10 };

/** A sample every `step` s for `seconds`, valued by `f`. */
function series(seconds: number, step: number, f: (t: number, i: number) => number): Point[] {
  return Array.from({ length: Math.floor(seconds / step) + 1 }, (_, i) => ({
    t: i * step,
    v: f(i * step, i),
  }));
}

/** A garbage collector's sawtooth: climbs 12 MiB over 17 s, then drops back to the live 15 MiB. */
const sawtooth = (t: number) => 15 + ((t % 17) / 17) * 12;
/** Deterministic jitter in [-1, 1). */
const jitter = (i: number) => ((i * 7919) % 200) / 100 - 1;

describe("the leak criterion", () => {
  it("calls a GC sawtooth flat, however the samples fall on it", () => {
    for (const step of [2, 3, 5]) {
      expect(judge(heap, series(180, step, sawtooth), 45).verdict).toBe("flat");
      expect(judge(heap, series(60, step, sawtooth), 15).verdict).toBe("flat");
    }
  });

  it("calls a count that moves with the connections in flight flat", () => {
    expect(
      judge(
        fds,
        series(60, 2, (_, i) => 30 + 6 * jitter(i)),
        15,
      ).verdict,
    ).toBe("flat");
  });

  it("flags a steady leak on top of the sawtooth", () => {
    // 300 KiB/s: 13 MiB over the 45 s judged, where the sawtooth alone swings 12 MiB.
    const leak = series(60, 2, (t) => sawtooth(t) + (t * 300) / 1024);
    const v = judge(heap, leak, 15);
    expect(v.verdict).toBe("grows");
    expect(v.growth).toBeGreaterThan(v.bound);
  });

  it("flags one fd lost every few connections", () => {
    expect(
      judge(
        fds,
        series(60, 2, (t, i) => 30 + t / 2 + 3 * jitter(i)),
        15,
      ).verdict,
    ).toBe("grows");
  });

  it("does not flag a table that filled up in the first half and stays full", () => {
    // Rises 40 over the first half of the judged span (45..112 s), then flat to 180 s.
    const filled = series(180, 3, (t) => 30 + (Math.min(Math.max(t - 45, 0), 67) / 67) * 40);
    const v = judge(fds, filled, 45);
    expect(v.growth).toBeGreaterThan(v.bound);
    expect(v.lateGrowth).toBeLessThan(v.bound / 2);
    expect(v.verdict).toBe("flat");
  });

  it("ignores the warm-up", () => {
    expect(
      judge(
        fds,
        series(60, 2, (t) => (t < 15 ? 2 * t : 30)),
        15,
      ).verdict,
    ).toBe("flat");
  });

  it("needs enough samples, and leaves a metric whose own warm-up outlasts the run unjudged", () => {
    expect(
      judge(
        fds,
        series(20, 2, () => 30),
        15,
      ).verdict,
    ).toBe("too few samples");
    expect(
      judge(
        { ...fds, minWarmup: 75 },
        series(60, 2, () => 30),
        15,
      ).verdict,
    ).toBe("not judged");
  });

  it("takes the median slope: one outlier does not make a trend", () => {
    const points = series(60, 2, () => 10);
    points[20]!.v = 1000;
    expect(theilSen(points)).toBe(0);
  });
});
