/** Why a soak fails: a metric that grows, a traffic check out of tolerance or missing, a status API that failed. */
import { judgedMetrics, type Sample } from "./metrics.js";
import { checkProblem, type Tally } from "./tally.js";
import type { Verdict } from "./verdict.js";

export function runProblems(
  verdicts: readonly Verdict[],
  tally: Tally,
  expectedChecks: readonly string[],
  samples: readonly Sample[],
): string[] {
  const problems: string[] = [];
  for (const v of verdicts) {
    const spec = judgedMetrics.find((m) => m.key === v.key)!;
    if (v.verdict === "grows")
      problems.push(
        `${spec.label} grows: +${v.growth.toFixed(1)} ${spec.unit} over the run (bound ${v.bound.toFixed(1)})`,
      );
    if (v.verdict === "too few samples")
      problems.push(`${spec.label}: only ${v.n} samples after the warm-up`);
  }
  for (const [check, e] of Object.entries(tally.checks)) {
    const p = checkProblem(e);
    if (p) problems.push(`${check}: ${p}`);
  }
  for (const check of expectedChecks) if (!tally.checks[check]) problems.push(`${check}: never ran`);
  const statusErrors = samples.filter((s) => s.statusError);
  if (statusErrors.length > 0)
    problems.push(`status API failed ${statusErrors.length} time(s): ${statusErrors[0]!.statusError}`);
  return problems;
}
