/**
 * Answers from upstreams, kept for their TTL (RFC 2181 §5.2: the smallest TTL of the set) and
 * negative answers for the SOA's negative TTL (RFC 2308 §5). Handed-out TTLs count down.
 */
import type { Answer, Question, SoaAnswer } from "dns-packet";
import type { Resolution } from "./layer.js";
import { type Clock, systemClock } from "./logger.js";
import { normalizeName } from "./name.js";

export interface CacheOptions {
  /** Entries kept before the least recently stored go (default 10 000). */
  maxEntries?: number;
  /** Upper bound of any cached TTL, seconds (default 3600). */
  maxTtl?: number;
  /** Negative TTL when the upstream sent no SOA, seconds (default 30). */
  negativeTtl?: number;
  clock?: Clock;
}

interface Entry {
  value: Resolution;
  storedAt: number;
  expiresAt: number;
}

export class DnsCache {
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly maxEntries: number;
  private readonly maxTtl: number;
  private readonly negativeTtl: number;
  hits = 0;
  misses = 0;

  constructor(o: CacheOptions = {}) {
    this.clock = o.clock ?? systemClock;
    this.maxEntries = o.maxEntries ?? 10_000;
    this.maxTtl = o.maxTtl ?? 3600;
    this.negativeTtl = o.negativeTtl ?? 30;
  }

  static key(scope: string, q: Question): string {
    return `${scope}|${normalizeName(q.name)}|${q.type}|${q.class ?? "IN"}`;
  }

  get(key: string): Resolution | undefined {
    const e = this.entries.get(key);
    const now = this.clock.now();
    if (!e || e.expiresAt <= now) {
      if (e) this.entries.delete(key);
      this.misses++;
      return undefined;
    }
    this.hits++;
    const age = Math.floor((now - e.storedAt) / 1000);
    // A TTL cut by maxTtl is cut for the client's cache too.
    const age1 = (a: Answer): Answer =>
      "ttl" in a ? { ...a, ttl: Math.max(0, Math.min(this.maxTtl, a.ttl ?? 0) - age) } : a;
    return {
      ...e.value,
      answers: e.value.answers.map(age1),
      authorities: e.value.authorities.map(age1),
      additionals: e.value.additionals.map(age1),
      cached: true,
    };
  }

  /** Stores an answer for its TTL (or `ttl` seconds); SERVFAIL and anything with TTL 0 are not kept. */
  set(key: string, value: Resolution, ttl = this.ttlOf(value) ?? 0): void {
    ttl = Math.min(this.maxTtl, ttl);
    if (ttl <= 0) return;
    const now = this.clock.now();
    this.entries.delete(key);
    this.entries.set(key, { value, storedAt: now, expiresAt: now + ttl * 1000 });
    if (this.entries.size > this.maxEntries) {
      this.entries.delete(this.entries.keys().next().value!);
    }
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  private ttlOf(r: Resolution): number | undefined {
    if (r.rcode !== "NOERROR" && r.rcode !== "NXDOMAIN") return undefined;
    if (r.rcode === "NOERROR" && r.answers.length > 0) {
      return Math.min(...r.answers.map((a) => ("ttl" in a ? (a.ttl ?? 0) : 0)));
    }
    const soa = r.authorities.find((a): a is SoaAnswer => a.type === "SOA");
    return soa ? Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0) : this.negativeTtl;
  }
}
