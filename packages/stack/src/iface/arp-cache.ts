/** IPv4 → MAC of the guests, learned from their frames and ARP. Bounded. */
export class ArpCache {
  private readonly entries = new Map<number, Buffer>();
  constructor(private readonly limit = 4096) {}

  learn(ip: number, mac: Buffer): void {
    const known = this.entries.get(ip);
    if (known?.equals(mac)) return;
    if (!known && this.entries.size >= this.limit) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    // Copy: `mac` is usually a view into a received frame.
    this.entries.set(ip, Buffer.from(mac));
  }

  lookup(ip: number): Buffer | undefined {
    return this.entries.get(ip);
  }

  forget(ip: number): void {
    this.entries.delete(ip);
  }
}
