/** One kind of traffic, repeated until the run ends; an exception is a failed attempt, never the end. */
import { sleep } from "../proc.js";
import type { Tally } from "./tally.js";

export async function lane(
  tally: Tally,
  check: string,
  running: () => boolean,
  pauseMs: number,
  body: () => Promise<void>,
): Promise<void> {
  while (running()) {
    try {
      await body();
    } catch (err) {
      tally.fail(check, "failed", (err as Error).message);
    }
    // A pause between attempts: a steady mix, not a saturated link (the VM's TCG needs a core).
    if (running()) await sleep(pauseMs);
  }
}
