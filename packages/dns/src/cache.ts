/**
 * Answers from upstreams, kept for their TTL (RFC 2181 §5.2: the smallest TTL of the set) and
 * negative answers for the SOA's negative TTL (RFC 2308 §5). Handed-out TTLs count down.
 * Bounded by entries and by estimated bytes, least recently used first out: an upstream decides
 * how large its answers are, so a count alone bounds nothing.
 */

import { type Clock, systemClock } from "@desktopd/core";
import type { Answer, Question, SoaAnswer } from "dns-packet";
import { BoundedMap, type StoreCounters } from "./bounded-map.js";
import type { Resolution } from "./layer.js";
import { normalizeName } from "./name.js";
import { estimateBytes } from "./size.js";

export interface CacheOptions {
  /** Entries kept before the least recently used go (default 10 000). */
  maxEntries?: number;
  /** Estimated bytes kept before the least recently used go (default 8 MiB). */
  maxBytes?: number;
  /** An answer estimated larger than this is not kept at all (default 64 KiB). */
  maxEntryBytes?: number;
  /** Upper bound of any cached TTL, seconds (default 3600). */
  maxTtl?: number;
  /** Negative TTL when the upstream sent no SOA, seconds (default 30). */
  negativeTtl?: number;
  clock?: Clock;
}

export interface CacheCounters extends StoreCounters {
  hits: number;
  misses: number;
}

interface Entry {
  value: Resolution;
  storedAt: number;
  expiresAt: number;
}

export class DnsCache {
  private readonly entries: BoundedMap<string, Entry>;
  private readonly clock: Clock;
  private readonly maxTtl: number;
  private readonly negativeTtl: number;
  hits = 0;
  misses = 0;

  constructor(o: CacheOptions = {}) {
    this.clock = o.clock ?? systemClock;
    this.entries = new BoundedMap({
      maxEntries: o.maxEntries ?? 10_000,
      maxBytes: o.maxBytes ?? 8 * 1024 * 1024,
      maxEntryBytes: o.maxEntryBytes ?? 64 * 1024,
    });
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
      if (e) this.entries.expire(key);
      this.misses++;
      return undefined;
    }
    this.hits++;
    this.entries.touch(key);
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

  /**
   * Stores an answer for its TTL (or `ttl` seconds); SERVFAIL, anything with TTL 0 and anything
   * larger than `maxEntryBytes` are not kept.
   */
  set(key: string, value: Resolution, ttl = this.ttlOf(value) ?? 0): void {
    ttl = Math.min(this.maxTtl, ttl);
    if (ttl <= 0) return;
    const now = this.clock.now();
    // An expired entry nobody asks for again would otherwise wait for eviction to go.
    const oldest = this.entries.oldestKey();
    if (oldest !== undefined && (this.entries.get(oldest)?.expiresAt ?? now) <= now)
      this.entries.expire(oldest);
    const bytes =
      estimateBytes(key) +
      estimateBytes(value.answers) +
      estimateBytes(value.authorities) +
      estimateBytes(value.additionals) +
      ENTRY_OVERHEAD;
    this.entries.set(key, { value, storedAt: now, expiresAt: now + ttl * 1000 }, bytes);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Estimated bytes held. */
  get bytes(): number {
    return this.entries.bytes;
  }

  counters(): CacheCounters {
    return { ...this.entries.counters(), hits: this.hits, misses: this.misses };
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

/** The entry and resolution objects and the Map slot around the records. */
const ENTRY_OVERHEAD = 256;
