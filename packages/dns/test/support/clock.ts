import { ManualClock as CoreManualClock } from "@desktopd/core";

/** @desktopd/core's manual clock, starting where these tests expect (1 000 000 ms). */
export class ManualClock extends CoreManualClock {
  constructor(t = 1_000_000) {
    super(t);
  }

  /** Timers waiting to run. */
  get pending(): number {
    return this.pendingTimers;
  }
}
