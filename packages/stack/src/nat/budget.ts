/**
 * Byte budget for data the stack buffers on behalf of guests (TCP receive and send buffers),
 * global and per guest. Flows take grants and give them back; a grant is the most a flow may
 * hold, so the sum of grants bounds the memory, whatever the guests send or the host reads.
 */
export interface BufferBudgetOptions {
  /** All guests together (default 256 MiB). */
  totalBytes?: number;
  /** One guest (default 128 MiB): one guest cannot take what the others need. */
  perGuestBytes?: number;
}

export class BufferBudget {
  readonly totalBytes: number;
  readonly perGuestBytes: number;
  private used = 0;
  private readonly byGuest = new Map<number, number>();

  constructor(o: BufferBudgetOptions = {}) {
    this.totalBytes = o.totalBytes ?? 256 * 1024 * 1024;
    this.perGuestBytes = o.perGuestBytes ?? 128 * 1024 * 1024;
  }

  get usedBytes(): number {
    return this.used;
  }

  usedBy(guest: number): number {
    return this.byGuest.get(guest) ?? 0;
  }

  /** What `guest` could still take. */
  available(guest: number): number {
    return Math.max(0, Math.min(this.totalBytes - this.used, this.perGuestBytes - this.usedBy(guest)));
  }

  /** Grants up to `want` bytes to `guest`, or 0 when not even `min` is left. */
  take(guest: number, want: number, min = want): number {
    const granted = Math.min(want, this.available(guest));
    if (granted < min || granted <= 0) return 0;
    this.used += granted;
    this.byGuest.set(guest, this.usedBy(guest) + granted);
    return granted;
  }

  give(guest: number, bytes: number): void {
    if (bytes <= 0) return;
    this.used -= bytes;
    const left = this.usedBy(guest) - bytes;
    if (left > 0) this.byGuest.set(guest, left);
    else this.byGuest.delete(guest);
  }
}

/** Counts entries per guest against a share of a table, so one guest cannot fill it alone. */
export class GuestShares {
  private readonly counts = new Map<number, number>();
  constructor(readonly perGuest: number) {}

  count(guest: number): number {
    return this.counts.get(guest) ?? 0;
  }

  full(guest: number): boolean {
    return this.count(guest) >= this.perGuest;
  }

  add(guest: number): void {
    this.counts.set(guest, this.count(guest) + 1);
  }

  remove(guest: number): void {
    const left = this.count(guest) - 1;
    if (left > 0) this.counts.set(guest, left);
    else this.counts.delete(guest);
  }
}
