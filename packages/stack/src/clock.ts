/**
 * Time and randomness are injected so that protocol state machines are deterministic in tests.
 * Protocol cores never read a clock or set a timer themselves: they take `now` and report
 * when they next need to run (`pollAt`); a driver owns the real timers.
 */
export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => performance.now() };

/** A manual clock for tests. */
export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
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
