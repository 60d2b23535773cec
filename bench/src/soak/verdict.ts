/**
 * The leak criterion. A metric is judged on the samples after the warm-up only (start-up heap
 * growth, JIT, lazily built tables are not leaks). It "grows" when both hold:
 *
 * 1. trend: the Theil–Sen slope of the judged samples (the median of all pairwise slopes, which
 *    a GC sawtooth or a burst of open connections barely moves) times the judged span exceeds
 *    the bound, and
 * 2. late trend: the Theil–Sen slope of the second half of them, times the same span, exceeds
 *    half the bound — the growth still goes on at the end; a table that filled up early and
 *    stays full is not a leak.
 *
 * bound = max(rel × the judged samples' median, abs). `abs` sits above the noise of a steady
 * daemon (see bench/README.md); `rel` keeps it proportional for larger processes. A steady leak
 * that adds more than the bound over the judged span meets both.
 */

export interface MetricSpec {
  key: string;
  label: string;
  unit: "MiB" | "count";
  rel: number;
  abs: number;
  /** Seconds of traffic this metric needs before it can settle (judged from max(warm-up, this)). */
  minWarmup?: number;
}

export interface Point {
  /** Seconds since traffic started. */
  t: number;
  v: number;
}

export interface Verdict {
  key: string;
  /** "not judged": the run ended before the metric's own warm-up did (not a failure). */
  verdict: "flat" | "grows" | "too few samples" | "not judged";
  /** Judged samples: those from this many seconds of traffic on. */
  from: number;
  n: number;
  median: number;
  /** Slope × judged span: what the trend added over the run. */
  growth: number;
  /** The second half's slope × the whole judged span. */
  lateGrowth: number;
  bound: number;
}

/** Fewer judged samples than this cannot separate a trend from noise. */
export const minSamples = 8;

export function judge(spec: MetricSpec, points: readonly Point[], warmupSeconds: number): Verdict {
  const from = Math.max(warmupSeconds, spec.minWarmup ?? 0);
  const judged = points.filter((p) => p.t >= from && Number.isFinite(p.v));
  const n = judged.length;
  const med = median(judged.map((p) => p.v));
  const bound = Math.max(spec.rel * med, spec.abs);
  if (n < minSamples) {
    // The metric's own warm-up outlasted the run: nothing to judge, and nothing wrong.
    const verdict = from > warmupSeconds ? "not judged" : "too few samples";
    return { key: spec.key, verdict, from, n, median: med, growth: 0, lateGrowth: 0, bound };
  }
  const span = judged[n - 1]!.t - judged[0]!.t;
  const growth = theilSen(judged) * span;
  const lateGrowth = theilSen(judged.slice(Math.floor(n / 2))) * span;
  const grows = growth > bound && lateGrowth > bound / 2;
  return {
    key: spec.key,
    verdict: grows ? "grows" : "flat",
    from,
    n,
    median: med,
    growth,
    lateGrowth,
    bound,
  };
}

/** Median of the slopes between every pair of points with distinct times. */
export function theilSen(points: readonly Point[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++) {
    for (let j = i + 1; j < points.length; j++) {
      const dt = points[j]!.t - points[i]!.t;
      if (dt > 0) slopes.push((points[j]!.v - points[i]!.v) / dt);
    }
  }
  return median(slopes);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}
