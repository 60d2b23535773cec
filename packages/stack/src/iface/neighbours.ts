/**
 * Address → MAC of the guests (IPv4 as a number, learned from their frames, ARP and DHCP; IPv6
 * as text, from their frames and neighbour discovery) — and the source guard: an
 * address belongs to the MAC that holds its DHCP lease (or static reservation); an address with no
 * lease belongs to the first MAC that uses it until that MAC has been silent for `holdMs`. Frames
 * and ARP from any other MAC claiming it are spoofed, so one guest cannot take another's traffic.
 */
export interface NeighbourOptions<K = number> {
  /** Most entries; the least recently learned is forgotten beyond (default 4096). */
  limit?: number;
  /** How long a MAC keeps an address without a lease after its last frame (default 60 s). */
  holdMs?: number;
  /** The MAC (lower-case "aa:bb:...") that holds `ip` by DHCP lease or reservation, if any. */
  leaseOwner?: (ip: K) => string | undefined;
  /** Check sources at all (default true); false learns whatever a frame says, as a plain ARP cache. */
  guard?: boolean;
  /**
   * Most addresses one MAC may hold (default: `limit`); beyond, its own oldest goes. With IPv6 a
   * guest may use any number of addresses: it must not churn the others' entries out of the table.
   */
  perMacLimit?: number;
}

interface Entry {
  mac: Buffer;
  /** The MAC as a number, for a cheap comparison per frame. */
  key: number;
  seen: number;
}

const macKey = (mac: Buffer) => mac.readUIntBE(0, 6);
const macText = (mac: Buffer) =>
  [...mac.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");

export class NeighbourTable<K = number> {
  private readonly entries = new Map<K, Entry>();
  private readonly limit: number;
  private readonly holdMs: number;
  private readonly leaseOwner: (ip: K) => string | undefined;
  private readonly guard: boolean;
  private readonly perMacLimit: number;
  /** Addresses held per MAC (by its number), when `perMacLimit` is below `limit`. */
  private readonly perMac = new Map<number, number>();
  /** Entries a MAC lost to its own newer addresses beyond `perMacLimit`. */
  evictedOverMacLimit = 0;

  constructor(o: NeighbourOptions<K> = {}) {
    this.limit = o.limit ?? 4096;
    this.holdMs = o.holdMs ?? 60_000;
    this.leaseOwner = o.leaseOwner ?? (() => undefined);
    this.guard = o.guard !== false;
    this.perMacLimit = Math.min(o.perMacLimit ?? this.limit, this.limit);
  }

  lookup(ip: K): Buffer | undefined {
    return this.entries.get(ip)?.mac;
  }

  /** The MAC that holds `ip`, as a number (what flows are charged to: see `FlowOwner`). */
  macKeyOf(ip: K): number | undefined {
    return this.entries.get(ip)?.key;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Every entry, least recently learned first. */
  list(): { address: K; mac: string }[] {
    return [...this.entries].map(([address, e]) => ({ address, mac: macText(e.mac) }));
  }

  /**
   * May `mac` send from `ip` (at time `now`)? Learns or refreshes the entry when it may. The
   * common case — the known MAC again — is one map lookup and one number comparison.
   */
  admit(ip: K, mac: Buffer, now: number): boolean {
    const known = this.entries.get(ip);
    const key = macKey(mac);
    if (known?.key === key) {
      known.seen = now;
      return true;
    }
    if (this.guard) {
      const owner = this.leaseOwner(ip);
      if (
        owner !== undefined ? owner !== macText(mac) : known !== undefined && now - known.seen < this.holdMs
      ) {
        return false;
      }
    }
    this.set(ip, mac, key, now);
    return true;
  }

  /** `mac` owns `ip` now (a DHCP ACK): whoever had it before loses it. */
  pin(ip: K, mac: Buffer, now: number): void {
    this.set(ip, mac, macKey(mac), now);
  }

  private set(ip: K, mac: Buffer, key: number, now: number): void {
    this.remove(ip);
    if (this.perMacLimit < this.limit && (this.perMac.get(key) ?? 0) >= this.perMacLimit) {
      // The MAC's own oldest address makes room (insertion order is age order).
      for (const [address, e] of this.entries) {
        if (e.key !== key) continue;
        this.remove(address);
        this.evictedOverMacLimit++;
        break;
      }
    }
    if (this.entries.size >= this.limit) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.remove(oldest);
    }
    // Copy: `mac` is usually a view into a received frame.
    this.entries.set(ip, { mac: Buffer.from(mac.subarray(0, 6)), key, seen: now });
    if (this.perMacLimit < this.limit) this.perMac.set(key, (this.perMac.get(key) ?? 0) + 1);
  }

  private remove(ip: K): void {
    const e = this.entries.get(ip);
    if (!e) return;
    this.entries.delete(ip);
    if (this.perMacLimit >= this.limit) return;
    const n = (this.perMac.get(e.key) ?? 1) - 1;
    if (n > 0) this.perMac.set(e.key, n);
    else this.perMac.delete(e.key);
  }
}
