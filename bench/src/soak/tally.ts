/**
 * Counts every traffic check of the soak: attempts, and failures by class. A wrong answer
 * (checksum, DNS address, echoed payload) is never tolerated; a connection that failed or timed
 * out is tolerated up to a small share, since a loaded 2-core host with a TCG guest may drop one.
 */

/** `wrong`: the peer answered, but not what was sent or defined. `failed`: no answer (refused, reset, timeout). */
export type FailureClass = "wrong" | "failed";

export interface CheckTally {
  attempts: number;
  wrong: number;
  failed: number;
  /** The first few failure messages, for the report. */
  examples: string[];
  /** Bytes moved by this check (payload only), for the report. */
  bytes: number;
  /** Further figures of the check, summed (e.g. iperf3's lost datagrams). */
  notes: Record<string, number>;
}

/** Share of attempts per check that may fail without an answer (never a wrong answer). */
export const failedTolerance = 0.01;

const keptExamples = 5;

export class Tally {
  readonly checks: Record<string, CheckTally> = {};

  private entry(check: string): CheckTally {
    this.checks[check] ??= { attempts: 0, wrong: 0, failed: 0, examples: [], bytes: 0, notes: {} };
    return this.checks[check];
  }

  ok(check: string, count = 1, bytes = 0): void {
    const e = this.entry(check);
    e.attempts += count;
    e.bytes += bytes;
  }

  fail(check: string, kind: FailureClass, message: string, count = 1): void {
    const e = this.entry(check);
    e.attempts += count;
    e[kind] += count;
    if (e.examples.length < keptExamples) e.examples.push(`${kind}: ${oneLine(message)}`);
  }

  note(check: string, key: string, n: number): void {
    const notes = this.entry(check).notes;
    notes[key] = (notes[key] ?? 0) + n;
  }

  /** Attempts and failures summed over all checks (for the sample table). */
  totals(): { attempts: number; failures: number } {
    let attempts = 0;
    let failures = 0;
    for (const e of Object.values(this.checks)) {
      attempts += e.attempts;
      failures += e.wrong + e.failed;
    }
    return { attempts, failures };
  }
}

/** Why a check fails the run, or undefined when it passes. */
export function checkProblem(e: CheckTally): string | undefined {
  if (e.attempts === 0) return "never ran";
  if (e.wrong > 0) return `${e.wrong} wrong answer(s)`;
  if (e.failed > Math.floor(e.attempts * failedTolerance))
    return `${e.failed} of ${e.attempts} failed (tolerance ${failedTolerance * 100}%)`;
  return undefined;
}

function oneLine(s: string, max = 300): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}
