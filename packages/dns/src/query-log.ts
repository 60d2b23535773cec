/** The diagnostic record of one query, kept in a ring of the most recent ones. */
import type { Answer } from "dns-packet";

export interface QueryLogEntry {
  /** Wall-clock time the query arrived (ms since the epoch). */
  time: number;
  client: string;
  transport: "udp" | "tcp";
  name: string;
  type: string;
  rcode: string;
  /** Answer records as text, e.g. "A 192.168.65.254", "CNAME web.test". */
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

export class QueryLog {
  private readonly ring: QueryLogEntry[] = [];
  private next = 0;
  constructor(private readonly capacity: number) {}

  add(e: QueryLogEntry): void {
    if (this.capacity <= 0) return;
    if (this.ring.length < this.capacity) this.ring.push(e);
    else this.ring[this.next] = e;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Oldest first. */
  entries(): QueryLogEntry[] {
    return this.ring.length < this.capacity
      ? [...this.ring]
      : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }
}

export function describeAnswer(a: Answer): string {
  const d = (a as { data?: unknown }).data;
  if (typeof d === "string") return `${a.type} ${d}`;
  if (Buffer.isBuffer(d)) return `${a.type} <${d.length} bytes>`;
  if (Array.isArray(d)) return `${a.type} ${d.map(String).join(" ")}`;
  // dns-packet keeps fields in wire order (SRV priority weight port target), as a zone file shows them.
  if (d && typeof d === "object") return `${a.type} ${Object.values(d).map(String).join(" ")}`;
  return a.type;
}
