/**
 * Encoded responses by the exact bytes of the query that got them (all but its id), kept for
 * a moment: a guest asking the same question again is answered without decoding, resolving or
 * encoding anything. Only answers that cannot change within that moment are kept — fixed
 * records, and upstream answers now in the DNS cache — never registry or DHCP names, which come
 * and go at any time. A TTL handed out from here is at most `lifetimeMs` older than it should be.
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

  constructor(
    private readonly maxEntries: number,
    private readonly lifetimeMs: number,
  ) {}

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

  set(query: Buffer, transport: string, reply: Buffer, entry: QueryLogEntry, now: number): void {
    if (this.maxEntries === 0 || reply.length < 12) return;
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
      expiresAt: now + this.lifetimeMs,
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

/** Layers whose answers stay the same for a moment; the others answer from live state. */
export const STEADY_LAYERS: ReadonlySet<string> = new Set(["fixed", "forward", "host"]);
