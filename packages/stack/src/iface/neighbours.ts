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

  constructor(o: NeighbourOptions<K> = {}) {
    this.limit = o.limit ?? 4096;
    this.holdMs = o.holdMs ?? 60_000;
    this.leaseOwner = o.leaseOwner ?? (() => undefined);
    this.guard = o.guard !== false;
  }

  lookup(ip: K): Buffer | undefined {
    return this.entries.get(ip)?.mac;
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
    this.entries.delete(ip);
    if (this.entries.size >= this.limit) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    // Copy: `mac` is usually a view into a received frame.
    this.entries.set(ip, { mac: Buffer.from(mac.subarray(0, 6)), key, seen: now });
  }
}
