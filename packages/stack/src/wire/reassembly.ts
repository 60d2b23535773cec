import type { Now } from "@desktopd/core";
import { IPV4_HEADER_LEN, type Ipv4Packet } from "./ipv4.js";

/**
 * IPv4 fragment reassembly (RFC 791, with the hole bookkeeping of RFC 815 reduced to a sorted
 * list). Fragments that overlap are never merged: like RFC 5722 for IPv6, the whole datagram is
 * dropped, which shuts out overlap tricks (teardrop, filter evasion) at no cost to honest senders.
 */
export interface ReassemblyOptions {
  clock: Now;
  /** How long an incomplete datagram is kept (default 30 s, as Linux's ipfrag_time). */
  timeoutMs?: number;
  /** Incomplete datagrams in flight (default 64); the oldest is evicted to admit a new one. */
  maxDatagrams?: number;
  /**
   * Budget for buffered fragments (default 4 MiB). Each fragment is charged its payload plus
   * `FRAGMENT_OVERHEAD`, so a flood of 8-byte fragments cannot pin unbounded memory.
   */
  maxBytes?: number;
}

/** Per-fragment bookkeeping charged against `maxBytes`. */
export const FRAGMENT_OVERHEAD = 64;
const MAX_DATAGRAM = 0xffff;
const EMPTY = Buffer.alloc(0);

interface Fragment {
  start: number;
  end: number;
  data: Buffer;
}

interface Pending {
  /** Header fields come from the offset-0 fragment, as RFC 791 prescribes. */
  first?: Ipv4Packet;
  /** Sorted by `start`, never overlapping. */
  fragments: Fragment[];
  /** Payload length, known once the last fragment (MF clear) arrived. */
  total?: number;
  received: number;
  charged: number;
  createdAt: number;
}

export class Ipv4Reassembler {
  /** Drops by reason: "timeout", "overlap", "too-big", "limit", "malformed", "duplicate". */
  readonly drops: Record<string, number> = {};
  private readonly clock: Now;
  private readonly timeoutMs: number;
  private readonly maxDatagrams: number;
  private readonly maxBytes: number;
  /** Insertion order is age order, so the first entry is the oldest. */
  private readonly datagrams = new Map<string, Pending>();
  private charged = 0;

  constructor(options: ReassemblyOptions) {
    this.clock = options.clock;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxDatagrams = options.maxDatagrams ?? 64;
    this.maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  }

  get pending(): number {
    return this.datagrams.size;
  }

  /** What the held fragments are charged against `maxBytes`: payload plus `FRAGMENT_OVERHEAD` each. */
  get bufferedBytes(): number {
    return this.charged;
  }

  /**
   * Feed a fragment (moreFragments or fragmentOffset>0). Returns the whole datagram (a new
   * Ipv4Packet whose payload is a fresh Buffer) when complete, else undefined. The fragment's
   * bytes are copied, so the caller keeps its buffer. A packet that is not a fragment is
   * returned as is. Overlaps, >65535 bytes, over limits → dropped and counted.
   */
  push(packet: Ipv4Packet): Ipv4Packet | undefined {
    if (!packet.moreFragments && packet.fragmentOffset === 0) return packet;
    const now = this.clock.now();
    const start = packet.fragmentOffset;
    const end = start + packet.payload.length;
    const key = `${packet.src}/${packet.dst}/${packet.protocol}/${packet.id}`;
    let entry = this.datagrams.get(key);
    if (entry !== undefined && now - entry.createdAt >= this.timeoutMs) {
      this.discard(key, entry, "timeout");
      entry = undefined;
    }
    // Every fragment but the last carries a non-empty multiple of 8 bytes (RFC 791).
    if (packet.moreFragments && (end === start || (end - start) % 8 !== 0)) {
      return this.reject(key, entry, "malformed");
    }
    // The smallest header bounds the payload here; the first fragment's real one is checked at the end.
    if (IPV4_HEADER_LEN + end > MAX_DATAGRAM) return this.reject(key, entry, "too-big");
    const cost = end - start + FRAGMENT_OVERHEAD;
    if (cost > this.maxBytes) return this.reject(key, entry, "limit");

    if (entry === undefined) {
      if (this.datagrams.size >= this.maxDatagrams) this.evictOldest();
      entry = { fragments: [], received: 0, charged: 0, createdAt: now };
      this.datagrams.set(key, entry);
    }
    const total = packet.moreFragments ? entry.total : end;
    if (total !== undefined && (entry.total ?? total) !== total) return this.reject(key, entry, "malformed");
    if (total !== undefined && (end > total || lastEnd(entry) > total))
      return this.reject(key, entry, "malformed");

    const index = insertionPoint(entry.fragments, start);
    const before = entry.fragments[index - 1];
    const after = entry.fragments[index];
    if (
      after !== undefined &&
      after.start === start &&
      after.end === end &&
      after.data.equals(packet.payload)
    ) {
      // The network duplicated a fragment: harmless, keep the copy we have.
      count(this.drops, "duplicate");
      return undefined;
    }
    if ((before !== undefined && before.end > start) || (after !== undefined && after.start < end)) {
      return this.reject(key, entry, "overlap");
    }

    while (this.charged + cost > this.maxBytes) {
      const oldest = this.datagrams.keys().next().value as string;
      if (oldest === key) return this.reject(key, entry, "limit");
      this.discard(oldest, this.datagrams.get(oldest)!, "limit");
    }
    entry.fragments.splice(index, 0, { start, end, data: Buffer.from(packet.payload) });
    entry.received += end - start;
    entry.charged += cost;
    this.charged += cost;
    entry.total = total;
    // Keep the header fields, not the caller's buffer.
    if (start === 0) entry.first = { ...packet, payload: EMPTY };

    // Fragments never overlap, so the byte count alone says whether the holes are filled.
    if (entry.total === undefined || entry.received !== entry.total || entry.first === undefined)
      return undefined;
    if (entry.first.headerLength + entry.total > MAX_DATAGRAM) return this.reject(key, entry, "too-big");
    this.remove(key, entry);
    return assemble(entry.first, entry.fragments, entry.total);
  }

  /** Drops incomplete datagrams older than the timeout. */
  expire(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.datagrams) {
      if (now - entry.createdAt >= this.timeoutMs) this.discard(key, entry, "timeout");
    }
  }

  /** When `expire` next has work (clock milliseconds), or undefined when nothing is pending. */
  pollAt(): number | undefined {
    const oldest = this.datagrams.values().next().value as Pending | undefined;
    return oldest === undefined ? undefined : oldest.createdAt + this.timeoutMs;
  }

  private reject(key: string, entry: Pending | undefined, reason: string): undefined {
    if (entry === undefined) count(this.drops, reason);
    else this.discard(key, entry, reason);
    return undefined;
  }

  private discard(key: string, entry: Pending, reason: string): void {
    this.remove(key, entry);
    count(this.drops, reason);
  }

  private remove(key: string, entry: Pending): void {
    this.datagrams.delete(key);
    this.charged -= entry.charged;
  }

  private evictOldest(): void {
    const oldest = this.datagrams.entries().next().value;
    if (oldest !== undefined) this.discard(oldest[0], oldest[1], "limit");
  }
}

function count(drops: Record<string, number>, reason: string): void {
  drops[reason] = (drops[reason] ?? 0) + 1;
}

function lastEnd(entry: Pending): number {
  return entry.fragments.length === 0 ? 0 : entry.fragments[entry.fragments.length - 1]!.end;
}

/** Index of the first fragment starting at or after `start`. */
function insertionPoint(fragments: Fragment[], start: number): number {
  let lo = 0;
  let hi = fragments.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (fragments[mid]!.start < start) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function assemble(first: Ipv4Packet, fragments: Fragment[], total: number): Ipv4Packet {
  const payload = Buffer.allocUnsafe(total);
  for (const f of fragments) f.data.copy(payload, f.start);
  return {
    ...first,
    moreFragments: false,
    fragmentOffset: 0,
    totalLength: first.headerLength + total,
    payload,
  };
}
