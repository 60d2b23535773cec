/**
 * Encoded responses by the exact bytes of the query that got them (all but its id), kept for
 * a moment: a guest asking the same question again is answered without decoding, resolving or
 * encoding anything. The handler keeps only answers that cannot change within that moment
 * (`Answered.replayable`: fixed records, answers of the DNS cache; never registry or lease
 * names), for no longer than their smallest TTL. A TTL handed out from here is at most the
 * lifetime older than it should be.
 */
import type { QueryLogEntry } from "./query-log.js";

interface Stored {
  /** The response with a zero id; copied and stamped for each client. */
  reply: Buffer;
  /** The log entry of the query that made it; hits log a copy. */
  entry: QueryLogEntry;
  expiresAt: number;
}

export class ResponseCache {
  private readonly entries = new Map<string, Stored>();

  constructor(private readonly maxEntries: number) {}

  /** The response to `query` with its id, or undefined. */
  get(query: Buffer, transport: string, now: number): { reply: Buffer; entry: QueryLogEntry } | undefined {
    if (this.maxEntries === 0) return undefined;
    const key = ResponseCache.key(query, transport);
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt <= now) {
      this.entries.delete(key);
      return undefined;
    }
    const reply = Buffer.from(hit.reply);
    reply.writeUInt16BE(query.readUInt16BE(0), 0);
    return { reply, entry: hit.entry };
  }

  /** Keeps `reply` for `lifetimeMs`; queries and replies beyond a few KiB are not worth the memory. */
  set(
    query: Buffer,
    transport: string,
    reply: Buffer,
    entry: QueryLogEntry,
    now: number,
    lifetimeMs: number,
  ): void {
    if (this.maxEntries === 0 || lifetimeMs <= 0 || reply.length < 12) return;
    if (query.length > MAX_QUERY_BYTES || reply.length > MAX_REPLY_BYTES) return;
    // Insertion order is age: the oldest goes first.
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    const stored = Buffer.from(reply);
    stored.writeUInt16BE(0, 0);
    this.entries.set(ResponseCache.key(query, transport), {
      reply: stored,
      entry,
      expiresAt: now + lifetimeMs,
    });
  }

  clear(): void {
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
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
