import type { Clock, Timer } from "@desktopd/core";

/** Something holding entries that lapse: when its next one does, and how to drop the lapsed. */
export interface Expiring {
  pollAt(): number | undefined;
  expire(): void;
}

/**
 * One timer for the next lapse of an `Expiring` (fragment reassembly): entries are dropped when
 * their time is up, not only when the next packet comes.
 */
export class ExpiryTimer {
  private timer: Timer | undefined;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly target: Expiring,
  ) {}

  arm(): void {
    if (this.timer || this.stopped) return;
    const at = this.target.pollAt();
    if (at === undefined) return;
    this.timer = this.clock.setTimer(
      () => {
        this.timer = undefined;
        this.target.expire();
        this.arm();
      },
      Math.max(0, at - this.clock.now()) + 1,
    );
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }
}
