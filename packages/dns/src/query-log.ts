/**
 * The diagnostic record of the most recent queries, bounded by entries and by estimated bytes
 * (an entry holds the answers as text, and an answer may be kilobytes of TXT), oldest out first.
 */
import type { Answer } from "dns-packet";
import { BoundedMap, type StoreCounters } from "./bounded-map.js";
import { estimateBytes } from "./size.js";

export interface QueryLogEntry {
  /** Wall-clock time the query arrived (ms since the epoch). */
  time: number;
  client: string;
  transport: "udp" | "tcp";
  name: string;
  type: string;
  rcode: string;
  /** Answer records as text, e.g. "A 192.168.65.254", "CNAME web.test"; long ones cut (see `describeAnswers`). */
  answers: string[];
  /** Layer that answered: fixed, registry, forward, host, or none. */
  layer: string;
  /** Answered from a cache (the DNS cache, or a replayed response) rather than resolved anew. */
  cached: boolean;
  truncated: boolean;
  latencyMs: number;
  /** Why it is SERVFAIL, when a layer failed. */
  error?: string;
}

export interface QueryLogOptions {
  /** Entries kept (default 1000; 0 turns the log off). */
  maxEntries?: number;
  /** Estimated bytes kept (default 1 MiB). */
  maxBytes?: number;
}

export class QueryLog {
  private readonly ring: BoundedMap<number, QueryLogEntry>;
  private next = 0;

  constructor(o: QueryLogOptions = {}) {
    this.ring = new BoundedMap({ maxEntries: o.maxEntries ?? 1000, maxBytes: o.maxBytes ?? 1024 * 1024 });
  }

  /** Adds `e`; `bytes` when its size is known already (`QueryLog.bytesOf`). */
  add(e: QueryLogEntry, bytes = QueryLog.bytesOf(e)): void {
    this.ring.set(this.next++, e, bytes);
  }

  /** The estimated size of an entry in the log. */
  static bytesOf(e: QueryLogEntry): number {
    return estimateBytes(e) + ENTRY_OVERHEAD;
  }

  /** Oldest first. */
  entries(): QueryLogEntry[] {
    return this.ring.values();
  }

  counters(): Omit<StoreCounters, "expired"> {
    const { expired: _, ...rest } = this.ring.counters();
    return rest;
  }
}

/** The Map slot and key around an entry. */
const ENTRY_OVERHEAD = 64;

/** Text of one answer is cut here: the log is for reading, and a TXT answer may be 64 KiB. */
const MAX_DESCRIPTION = 256;
/** Answers described per entry; an upstream may send thousands of records in one answer. */
const MAX_DESCRIBED = 32;

/** The answers as log text: the first `MAX_DESCRIBED`, then how many more there were. */
export function describeAnswers(answers: readonly Answer[]): string[] {
  const shown = answers.slice(0, MAX_DESCRIBED).map(describeAnswer);
  if (answers.length > MAX_DESCRIBED) shown.push(`… ${answers.length - MAX_DESCRIBED} more`);
  return shown;
}

export function describeAnswer(a: Answer): string {
  const text = describe(a);
  return text.length <= MAX_DESCRIPTION ? text : `${text.slice(0, MAX_DESCRIPTION)}… (${text.length} chars)`;
}

function describe(a: Answer): string {
  const d = (a as { data?: unknown }).data;
  if (typeof d === "string") return `${a.type} ${d}`;
  if (Buffer.isBuffer(d)) return `${a.type} <${d.length} bytes>`;
  if (Array.isArray(d)) return `${a.type} ${d.map(String).join(" ")}`;
  // dns-packet keeps fields in wire order (SRV priority weight port target), as a zone file shows them.
  if (d && typeof d === "object") return `${a.type} ${Object.values(d).map(String).join(" ")}`;
  return a.type;
}
