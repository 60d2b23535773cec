import type { Clock } from "../../src/index.js";

/** A manual clock: TTLs and expiry are tested by moving time, never by waiting. */
export class ManualClock implements Clock {
  constructor(private t = 1_000_000) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
