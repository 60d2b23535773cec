/** Monotonic time and timers, injected so TTLs, expiry and idle timeouts are testable without waiting. */
export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /**
   * Calls `fn` once `ms` have passed on this clock and returns a cancel function. Optional: a
   * clock without it gets an unref'd `setTimeout` (see `after`).
   */
  after?(ms: number, fn: () => void): () => void;
}

export const systemClock: Clock = { now: () => performance.now() };

/** `clock.after`, or a real timer that does not keep the process alive. */
export function after(clock: Clock, ms: number, fn: () => void): () => void {
  if (clock.after) return clock.after(ms, fn);
  const timer = setTimeout(fn, ms);
  timer.unref?.();
  return () => clearTimeout(timer);
}
