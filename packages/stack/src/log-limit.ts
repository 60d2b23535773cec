import type { Now } from "@desktopd/core";

/**
 * Lets through at most `burst` log lines per `windowMs` for one kind of event, so a guest that
 * floods refused flows cannot flood the log; the next line let through says how many were held back.
 */
export class LogLimiter {
  private windowStart = Number.NEGATIVE_INFINITY;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly clock: Now,
    private readonly burst = 10,
    private readonly windowMs = 10_000,
  ) {}

  /** undefined: stay quiet; otherwise log now, with the number of lines held back since the last one. */
  admit(): { suppressed: number } | undefined {
    const now = this.clock.now();
    if (now - this.windowStart >= this.windowMs) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.burst) {
      this.suppressed++;
      return undefined;
    }
    this.inWindow++;
    const suppressed = this.suppressed;
    this.suppressed = 0;
    return { suppressed };
  }
}
