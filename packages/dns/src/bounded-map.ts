/**
 * A Map bounded by entries and by estimated bytes; beyond either, the least recently used entry
 * goes (stored or `touch`ed last is used last). An entry larger than `maxEntryBytes` is refused
 * outright: it would evict many small ones to hold one. The DNS cache, the response cache, the
 * query log and the name book all keep their entries in one.
 */

export interface Bounds {
  /** Entries kept at most; 0 keeps nothing. */
  maxEntries: number;
  /** Estimated bytes kept at most; 0 keeps nothing. */
  maxBytes: number;
  /** Largest single entry, estimated bytes (default: `maxBytes`). */
  maxEntryBytes?: number;
}

/** What a bounded store reports in `counters()`. */
export interface StoreCounters {
  entries: number;
  /** Estimated bytes held. */
  bytes: number;
  /** Entries dropped to make room, by the bound that was hit. */
  evicted: { entries: number; bytes: number };
  /** Entries dropped because their time was up (stores with expiry). */
  expired: number;
  /** Entries refused for being larger than the per-entry cap. */
  tooLarge: number;
}

/** A node of the recency list: `older` is towards the next eviction. */
interface Slot<K, V> {
  key: K;
  value: V;
  bytes: number;
  older: Slot<K, V> | undefined;
  newer: Slot<K, V> | undefined;
}

export class BoundedMap<K, V> {
  // Recency lives in a linked list, not in the Map's insertion order: a Map whose oldest entries
  // are deleted over and over makes every walk from its front step over their holes.
  private readonly map = new Map<K, Slot<K, V>>();
  private oldestSlot: Slot<K, V> | undefined;
  private newestSlot: Slot<K, V> | undefined;
  private readonly maxEntryBytes: number;
  private total = 0;
  readonly evicted = { entries: 0, bytes: 0 };
  expired = 0;
  tooLarge = 0;

  constructor(private readonly bounds: Bounds) {
    this.maxEntryBytes = Math.min(bounds.maxEntryBytes ?? bounds.maxBytes, bounds.maxBytes);
  }

  get(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  /** Marks `key` as just used: it is evicted last. */
  touch(key: K): void {
    const slot = this.map.get(key);
    if (!slot || slot === this.newestSlot) return;
    this.unlink(slot);
    this.append(slot);
  }

  /** Stores `value` as the most recent entry; false when it is refused (too large, or no room at all). */
  set(key: K, value: V, bytes: number): boolean {
    this.delete(key);
    if (this.bounds.maxEntries <= 0 || this.bounds.maxBytes <= 0) return false;
    if (bytes > this.maxEntryBytes) {
      this.tooLarge++;
      return false;
    }
    const slot: Slot<K, V> = { key, value, bytes, older: undefined, newer: undefined };
    this.map.set(key, slot);
    this.append(slot);
    this.total += bytes;
    while (this.map.size > this.bounds.maxEntries) this.dropOldest("entries");
    while (this.total > this.bounds.maxBytes) this.dropOldest("bytes");
    return true;
  }

  delete(key: K): boolean {
    const slot = this.map.get(key);
    if (!slot) return false;
    this.map.delete(key);
    this.unlink(slot);
    this.total -= slot.bytes;
    return true;
  }

  /** Drops an entry whose time is up, counted as expired rather than evicted. */
  expire(key: K): void {
    if (this.delete(key)) this.expired++;
  }

  /** The key of the least recently used entry. */
  oldestKey(): K | undefined {
    return this.oldestSlot?.key;
  }

  /** Oldest first. */
  values(): V[] {
    const out: V[] = [];
    for (let s = this.oldestSlot; s; s = s.newer) out.push(s.value);
    return out;
  }

  clear(): void {
    this.map.clear();
    this.oldestSlot = undefined;
    this.newestSlot = undefined;
    this.total = 0;
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.total;
  }

  counters(): StoreCounters {
    return {
      entries: this.map.size,
      bytes: this.total,
      evicted: { ...this.evicted },
      expired: this.expired,
      tooLarge: this.tooLarge,
    };
  }

  private append(slot: Slot<K, V>): void {
    slot.older = this.newestSlot;
    slot.newer = undefined;
    if (this.newestSlot) this.newestSlot.newer = slot;
    else this.oldestSlot = slot;
    this.newestSlot = slot;
  }

  private unlink(slot: Slot<K, V>): void {
    if (slot.older) slot.older.newer = slot.newer;
    else this.oldestSlot = slot.newer;
    if (slot.newer) slot.newer.older = slot.older;
    else this.newestSlot = slot.older;
    slot.older = undefined;
    slot.newer = undefined;
  }

  private dropOldest(reason: "entries" | "bytes"): void {
    const slot = this.oldestSlot;
    if (!slot) return;
    this.delete(slot.key);
    this.evicted[reason]++;
  }
}
