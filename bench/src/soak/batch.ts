/** Judging a batch of requests made by one client process (curl with many URLs, a socat flow). */
import { describeExit, type RunResult } from "../proc.js";
import type { Tally } from "./tally.js";

/**
 * A batch of `want.length` requests: each expected line present counts as one success (as often
 * as it is expected); other lines are wrong answers; the rest failed to connect or answer.
 */
export function judgeBatch(tally: Tally, check: string, r: RunResult, want: string[], got: string[]): void {
  const left = new Map<string, number>();
  for (const w of want) left.set(w, (left.get(w) ?? 0) + 1);
  let good = 0;
  let wrong = 0;
  for (const line of got.map((l) => l.trim()).filter((l) => l !== "")) {
    const n = left.get(line) ?? 0;
    if (n > 0) {
      left.set(line, n - 1);
      good++;
    } else wrong++;
  }
  if (good > 0) tally.ok(check, good);
  if (wrong > 0) tally.fail(check, "wrong", `${wrong} unexpected answers`, wrong);
  const missing = want.length - good;
  if (missing > 0) tally.fail(check, "failed", `${missing} of ${want.length}: ${describeExit(r)}`, missing);
}
