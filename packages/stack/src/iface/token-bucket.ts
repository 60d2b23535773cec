/**
 * A token bucket on the stack's clock: ICMP errors (RFC 1812 §4.3.2.8, RFC 4443 §2.4 (f)) and
 * solicited router advertisements leave at a bounded rate, so a guest that provokes them in a
 * flood makes the stack answer a few, not one per packet.
 */
import type { Now } from "@desktopd/core";

/** ICMP errors to one guest: a burst of 50, then 100 a second (a port scan's worth, not a flood's). */
export const ICMP_ERRORS_PER_SECOND = 100;
export const ICMP_ERROR_BURST = 50;

export class TokenBucket {
  private tokens: number;
  private at: number;

  /** `perSecond` tokens come back each second, up to `burst`. */
  constructor(
    private readonly clock: Now,
    private readonly perSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
    this.at = clock.now();
  }

  /** Takes a token if one is left. */
  take(): boolean {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.perSecond) / 1000);
    this.at = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * One bucket per key (a guest's MAC), so a guest that floods uses up its own answers only. At
 * most `maxKeys` are kept; a new key pushes out the one unused longest.
 */
export class KeyedTokenBuckets {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly clock: Now,
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly maxKeys = 1024,
  ) {}

  take(key: string): boolean {
    let bucket = this.buckets.get(key);
    if (bucket) this.buckets.delete(key);
    else {
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
      bucket = new TokenBucket(this.clock, this.perSecond, this.burst);
    }
    // Re-inserted: the map's order is least recently used first.
    this.buckets.set(key, bucket);
    return bucket.take();
  }
}
