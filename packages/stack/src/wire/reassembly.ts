import type { Now } from "@desktopd/core";
import { IPV4_HEADER_LEN, type Ipv4Packet } from "./ipv4.js";
import type { Ipv6Packet } from "./ipv6.js";

/**
 * Fragment reassembly for IPv4 (RFC 791) and IPv6 (RFC 8200 §4.5), with the hole bookkeeping
 * of RFC 815 reduced to a sorted list. Fragments that overlap are never merged: as RFC 5722
 * requires for IPv6, the whole datagram is dropped, which shuts out overlap tricks (teardrop,
 * filter evasion) at no cost to honest senders.
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
  /**
   * What one owner's datagrams (a guest's: see `push`) may hold of the above (default half of
   * each): beyond it the owner's own oldest datagram goes, so one sender cannot evict the others'.
   */
  maxDatagramsPerOwner?: number;
  maxBytesPerOwner?: number;
}

/** Who sent a fragment, for the per-owner shares: any key that tells senders apart. */
export type FragmentOwner = number | string;

/** Per-fragment bookkeeping charged against `maxBytes`. */
export const FRAGMENT_OVERHEAD = 64;
const MAX_DATAGRAM = 0xffff;
const EMPTY = Buffer.alloc(0);

interface Fragment {
  start: number;
  end: number;
  data: Buffer;
}

/** What reassembly needs to know of one family's fragments. */
interface FragmentCodec<P> {
  /** Fragments of one datagram share it. */
  key(p: P): string;
  offset(p: P): number;
  more(p: P): boolean;
  payload(p: P): Buffer;
  /** Header bytes that count against the 65535-byte bound with the payload, at least and for `p`. */
  minHeaderLength: number;
  headerLength(p: P): number;
  /** The offset-0 fragment's header fields, detached from the receive buffer. */
  keep(first: P): P;
  /** The whole datagram from the first fragment's fields and the joined payload. */
  assemble(first: P, payload: Buffer): P;
}

interface Pending<P> {
  /** Header fields come from the offset-0 fragment, as RFC 791 and RFC 8200 prescribe. */
  first?: P;
  /** Sorted by `start`, never overlapping. */
  fragments: Fragment[];
  /** Payload length, known once the last fragment (MF clear) arrived. */
  total?: number;
  received: number;
  charged: number;
  createdAt: number;
  owner?: FragmentOwner;
}

interface OwnerShare {
  datagrams: number;
  charged: number;
}

class Reassembler<P> {
  /**
   * Drops by reason: "timeout", "overlap", "too-big", "limit", "owner-limit" (an owner's own
   * datagram gave way to its newer one), "malformed", "duplicate".
   */
  readonly drops: Record<string, number> = {};
  private readonly clock: Now;
  private readonly timeoutMs: number;
  private readonly maxDatagrams: number;
  private readonly maxBytes: number;
  /** Insertion order is age order, so the first entry is the oldest. */
  private readonly datagrams = new Map<string, Pending<P>>();
  private charged = 0;
  private readonly maxDatagramsPerOwner: number;
  private readonly maxBytesPerOwner: number;
  /** Owners with datagrams pending: as many entries as senders, at most `maxDatagrams`. */
  private readonly owners = new Map<FragmentOwner, OwnerShare>();

  constructor(
    options: ReassemblyOptions,
    private readonly codec: FragmentCodec<P>,
  ) {
    this.clock = options.clock;
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxDatagrams = options.maxDatagrams ?? 64;
    this.maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
    this.maxDatagramsPerOwner = options.maxDatagramsPerOwner ?? Math.max(1, this.maxDatagrams >> 1);
    this.maxBytesPerOwner = options.maxBytesPerOwner ?? Math.max(1, this.maxBytes >> 1);
  }

  get pending(): number {
    return this.datagrams.size;
  }

  /** What the held fragments are charged against `maxBytes`: payload plus `FRAGMENT_OVERHEAD` each. */
  get bufferedBytes(): number {
    return this.charged;
  }

  /**
   * Feed a fragment. Returns the whole datagram (a new packet whose payload is a fresh Buffer)
   * when complete, else undefined. The fragment's bytes are copied, so the caller keeps its
   * buffer. Overlaps, >65535 bytes, over limits → dropped and counted. `owner`, when given, is
   * who sent it: its datagrams stay within their share, its oldest giving way to its newest.
   */
  push(packet: P, owner?: FragmentOwner): P | undefined {
    const { codec } = this;
    const more = codec.more(packet);
    const now = this.clock.now();
    const start = codec.offset(packet);
    const data = codec.payload(packet);
    const end = start + data.length;
    const key = codec.key(packet);
    let entry = this.datagrams.get(key);
    if (entry !== undefined && now - entry.createdAt >= this.timeoutMs) {
      this.discard(key, entry, "timeout");
      entry = undefined;
    }
    // Every fragment but the last carries a non-empty multiple of 8 bytes (RFC 791, RFC 8200).
    if (more && (end === start || (end - start) % 8 !== 0)) {
      return this.reject(key, entry, "malformed");
    }
    // The smallest header bounds the payload here; the first fragment's real one is checked at the end.
    if (codec.minHeaderLength + end > MAX_DATAGRAM) return this.reject(key, entry, "too-big");
    const cost = end - start + FRAGMENT_OVERHEAD;
    if (cost > this.maxBytes) return this.reject(key, entry, "limit");

    if (entry === undefined) {
      const share = owner === undefined ? undefined : this.owners.get(owner);
      if (share && share.datagrams >= this.maxDatagramsPerOwner) this.evictOldestOf(owner!);
      if (this.datagrams.size >= this.maxDatagrams) this.evictOldest();
      entry = { fragments: [], received: 0, charged: 0, createdAt: now };
      if (owner !== undefined) {
        // Looked up again: the eviction above may have ended the owner's last datagram.
        entry.owner = owner;
        const s = this.owners.get(owner);
        if (s) s.datagrams++;
        else this.owners.set(owner, { datagrams: 1, charged: 0 });
      }
      this.datagrams.set(key, entry);
    }
    const total = more ? entry.total : end;
    if (total !== undefined && (entry.total ?? total) !== total) return this.reject(key, entry, "malformed");
    if (total !== undefined && (end > total || lastEnd(entry) > total))
      return this.reject(key, entry, "malformed");

    const index = insertionPoint(entry.fragments, start);
    const before = entry.fragments[index - 1];
    const after = entry.fragments[index];
    if (after !== undefined && after.start === start && after.end === end && after.data.equals(data)) {
      // The network duplicated a fragment: harmless, keep the copy we have.
      count(this.drops, "duplicate");
      return undefined;
    }
    if ((before !== undefined && before.end > start) || (after !== undefined && after.start < end)) {
      return this.reject(key, entry, "overlap");
    }

    const own = entry.owner === undefined ? undefined : this.owners.get(entry.owner);
    while (own && own.charged + cost > this.maxBytesPerOwner) {
      if (!this.evictOldestOf(entry.owner!, key)) return this.reject(key, entry, "owner-limit");
    }
    while (this.charged + cost > this.maxBytes) {
      const oldest = this.datagrams.keys().next().value as string;
      if (oldest === key) return this.reject(key, entry, "limit");
      this.discard(oldest, this.datagrams.get(oldest)!, "limit");
    }
    entry.fragments.splice(index, 0, { start, end, data: Buffer.from(data) });
    entry.received += end - start;
    entry.charged += cost;
    this.charged += cost;
    if (own) own.charged += cost;
    entry.total = total;
    // Keep the header fields, not the caller's buffer.
    if (start === 0) entry.first = codec.keep(packet);

    // Fragments never overlap, so the byte count alone says whether the holes are filled.
    if (entry.total === undefined || entry.received !== entry.total || entry.first === undefined)
      return undefined;
    if (codec.headerLength(entry.first) + entry.total > MAX_DATAGRAM)
      return this.reject(key, entry, "too-big");
    this.remove(key, entry);
    const payload = Buffer.allocUnsafe(entry.total);
    for (const f of entry.fragments) f.data.copy(payload, f.start);
    return codec.assemble(entry.first, payload);
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
    const oldest = this.datagrams.values().next().value as Pending<P> | undefined;
    return oldest === undefined ? undefined : oldest.createdAt + this.timeoutMs;
  }

  private reject(key: string, entry: Pending<P> | undefined, reason: string): undefined {
    if (entry === undefined) count(this.drops, reason);
    else this.discard(key, entry, reason);
    return undefined;
  }

  private discard(key: string, entry: Pending<P>, reason: string): void {
    this.remove(key, entry);
    count(this.drops, reason);
  }

  private remove(key: string, entry: Pending<P>): void {
    this.datagrams.delete(key);
    this.charged -= entry.charged;
    if (entry.owner === undefined) return;
    const share = this.owners.get(entry.owner)!;
    share.datagrams--;
    share.charged -= entry.charged;
    if (share.datagrams === 0) this.owners.delete(entry.owner);
  }

  /** Drops `owner`'s oldest datagram but `keep`; false when it has no other. */
  private evictOldestOf(owner: FragmentOwner, keep?: string): boolean {
    for (const [key, entry] of this.datagrams) {
      if (entry.owner !== owner || key === keep) continue;
      this.discard(key, entry, "owner-limit");
      return true;
    }
    return false;
  }

  private evictOldest(): void {
    const oldest = this.datagrams.entries().next().value;
    if (oldest !== undefined) this.discard(oldest[0], oldest[1], "limit");
  }
}

function count(drops: Record<string, number>, reason: string): void {
  drops[reason] = (drops[reason] ?? 0) + 1;
}

function lastEnd(entry: Pending<unknown>): number {
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

const IPV4_FRAGMENTS: FragmentCodec<Ipv4Packet> = {
  key: (p) => `${p.src}/${p.dst}/${p.protocol}/${p.id}`,
  offset: (p) => p.fragmentOffset,
  more: (p) => p.moreFragments,
  payload: (p) => p.payload,
  // The smallest header bounds the payload at first; the first fragment's real one at the end.
  minHeaderLength: IPV4_HEADER_LEN,
  headerLength: (p) => p.headerLength,
  keep: (p) => ({ ...p, payload: EMPTY }),
  assemble: (first, payload) => ({
    ...first,
    moreFragments: false,
    fragmentOffset: 0,
    totalLength: first.headerLength + payload.length,
    payload,
  }),
};

/** IPv4 reassembly; `push` returns a packet that is not a fragment as is. */
export class Ipv4Reassembler extends Reassembler<Ipv4Packet> {
  constructor(options: ReassemblyOptions) {
    super(options, IPV4_FRAGMENTS);
  }

  override push(packet: Ipv4Packet, owner?: FragmentOwner): Ipv4Packet | undefined {
    if (!packet.moreFragments && packet.fragmentOffset === 0) return packet;
    return super.push(packet, owner);
  }
}

/**
 * IPv6 packets with a fragment header. The reassembled packet has no fragment header and
 * `headerLength` 40: the stack's guests send no other extension headers worth keeping.
 */
const IPV6_FRAGMENTS: FragmentCodec<Ipv6Packet> = {
  key: (p) => `${p.src.toString("hex")}/${p.dst.toString("hex")}/${p.fragment?.id}`,
  offset: (p) => p.fragment?.offset ?? 0,
  more: (p) => p.fragment?.more ?? false,
  payload: (p) => p.payload,
  // The payload length field (16 bits) covers everything after the fixed header.
  minHeaderLength: 0,
  headerLength: () => 0,
  keep: (p) => ({ ...p, src: Buffer.from(p.src), dst: Buffer.from(p.dst), payload: EMPTY }),
  assemble: (first, payload) => {
    const { fragment: _, ...whole } = first;
    return { ...whole, headerLength: 40, payload };
  },
};

export class Ipv6Reassembler extends Reassembler<Ipv6Packet> {
  constructor(options: ReassemblyOptions) {
    super(options, IPV6_FRAGMENTS);
  }
}
