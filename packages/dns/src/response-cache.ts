/**
 * Encoded responses by the exact bytes of the query that got them (all but its id), kept for
 * a moment: a guest asking the same question again is answered without decoding, resolving or
 * encoding anything. The handler keeps only answers that cannot change within that moment
 * (`Answered.replayable`: fixed records, answers of the DNS cache; never registry or lease
 * names), for no longer than their smallest TTL. A TTL handed out from here is at most the
 * lifetime older than it should be. Bounded by entries and by estimated bytes, oldest out first.
 */
import { BoundedMap, type StoreCounters } from "./bounded-map.js";
import type { AddressNames } from "./name-book.js";
import type { QueryLogEntry } from "./query-log.js";
import { estimateBytes } from "./size.js";

export interface ResponseCacheOptions {
  /** Responses kept (default 1000; 0 turns replay off). */
  maxEntries?: number;
  /** Estimated bytes kept (default 1 MiB). */
  maxBytes?: number;
}

/** What a replayed response stands for: its log entry, and the addresses it gives (for the name book). */
export interface Replay {
  reply: Buffer;
  entry: QueryLogEntry;
  /** `QueryLog.bytesOf(entry)`, worked out once rather than for every replay. */
  entryBytes: number;
  addresses: readonly AddressNames[];
}

interface Stored extends Replay {
  expiresAt: number;
}

export class ResponseCache {
  private readonly entries: BoundedMap<string, Stored>;

  constructor(o: ResponseCacheOptions = {}) {
    this.entries = new BoundedMap({ maxEntries: o.maxEntries ?? 1000, maxBytes: o.maxBytes ?? 1024 * 1024 });
  }

  /** The response to `query` with its id, or undefined. */
  get(query: Buffer, transport: string, now: number): Replay | undefined {
    if (this.entries.size === 0) return undefined;
    const key = ResponseCache.key(query, transport);
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt <= now) {
      this.entries.expire(key);
      return undefined;
    }
    const reply = Buffer.from(hit.reply);
    reply.writeUInt16BE(query.readUInt16BE(0), 0);
    return { reply, entry: hit.entry, entryBytes: hit.entryBytes, addresses: hit.addresses };
  }

  /** Keeps `replay.reply` for `lifetimeMs`; queries and replies beyond a few KiB are not worth the memory. */
  set(query: Buffer, transport: string, replay: Replay, now: number, lifetimeMs: number): void {
    const { reply } = replay;
    if (lifetimeMs <= 0 || reply.length < 12) return;
    if (query.length > MAX_QUERY_BYTES || reply.length > MAX_REPLY_BYTES) return;
    const stored = Buffer.from(reply);
    stored.writeUInt16BE(0, 0);
    const key = ResponseCache.key(query, transport);
    // The key is the query as a one-byte string. The entry's answers are shared with the log's
    // copies of it: counted here as well, an overestimate.
    const bytes =
      estimateBytes(key) + estimateBytes(stored) + replay.entryBytes + estimateBytes(replay.addresses);
    this.entries.set(key, { ...replay, reply: stored, expiresAt: now + lifetimeMs }, bytes);
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  counters(): StoreCounters {
    return this.entries.counters();
  }

  /** Flags, question and EDNS (the client's UDP size decides truncation), not the id. */
  private static key(query: Buffer, transport: string): string {
    return `${transport}:${query.toString("latin1", 2)}`;
  }
}

/** A guest's query with a name and an EDNS option or two; padded or odd ones are not kept. */
const MAX_QUERY_BYTES = 512;
/** Beyond a UDP answer's usual size: a huge TCP answer is rare, and costly to keep. */
const MAX_REPLY_BYTES = 4096;
