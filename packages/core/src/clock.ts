/**
 * Time and randomness are injected so that protocol state machines are deterministic in tests.
 * The protocol cores (TCP connection, DHCP server, reassembler) only read `now()`; the drivers
 * around them (flow tables, ARP resolution, UDP NAT) set their timers through the same clock,
 * so a test on a `ManualClock` runs idle timeouts and expiries without sleeping.
 */
export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Runs `fn` once, `ms` from now. A pending timer never keeps the process alive. */
  setTimer(fn: () => void, ms: number): Timer;
}

export interface Timer {
  /** Stops the timer; harmless after it ran. */
  cancel(): void;
}

/** The part of a clock that pure cores read. */
export type Now = Pick<Clock, "now">;

/** Wall-clock milliseconds since the epoch: for times people read (logs, lease ends), never for timing. */
export const wallClock: Now = { now: () => Date.now() };

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

/** A manual clock for tests: time moves only on `advance`, which runs due timers in order. */
export class ManualClock implements Clock {
  private readonly timers: ManualTimer[] = [];
  private seq = 0;
  constructor(private t = 0) {}

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const timer: ManualTimer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** When the next pending timer falls due, if any. */
  nextTimerAt(): number | undefined {
    let at: number | undefined;
    for (const t of this.timers) if (!t.cancelled && (at === undefined || t.at < at)) at = t.at;
    return at;
  }

  /** Timers not yet run nor cancelled. */
  get pendingTimers(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, running each timer that falls due at its own deadline. */
  advance(ms: number): void {
    const target = this.t + ms;
    for (;;) {
      const next = this.nextDue(target);
      if (!next) break;
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = target;
  }

  private nextDue(limit: number): ManualTimer | undefined {
    let best = -1;
    for (let i = 0; i < this.timers.length; i++) {
      const t = this.timers[i]!;
      if (t.cancelled) continue;
      const b = this.timers[best];
      if (t.at <= limit && (!b || t.at < b.at || (t.at === b.at && t.seq < b.seq))) best = i;
    }
    if (best < 0) {
      // Forget what was cancelled so long tests do not accumulate dead timers.
      for (let i = this.timers.length - 1; i >= 0; i--)
        if (this.timers[i]!.cancelled) this.timers.splice(i, 1);
      return undefined;
    }
    const [t] = this.timers.splice(best, 1);
    return t;
  }
}

export interface Random {
  /** A uniformly random unsigned 32-bit integer. */
  u32(): number;
}

/** Seeded generator (xorshift32): deterministic streams for tests and fault injection. */
export class SeededRandom implements Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  /** Uniform float in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }
}

/** Words drawn from the system's CSPRNG per refill: one call serves many connections. */
const POOL_WORDS = 256;
const pool = new Uint32Array(POOL_WORDS);
let poolNext = POOL_WORDS;

/**
 * Cryptographically random source for production (initial sequence numbers must not be
 * guessable), drawn in batches: a getRandomValues call per connection cost more than the rest of
 * the handshake's JavaScript.
 */
export const cryptoRandom: Random = {
  u32() {
    if (poolNext === POOL_WORDS) {
      crypto.getRandomValues(pool);
      poolNext = 0;
    }
    return pool[poolNext++]!;
  },
};
