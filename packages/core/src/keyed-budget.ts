/**
 * Units (bytes, connections, queries in flight) held per key (a guest, a client address) against
 * a limit per key and one for all keys, so one key cannot take what the others need. A key with
 * nothing held has no entry: the table is as large as the number of keys holding something.
 */
export class KeyedBudget<K> {
  private readonly held = new Map<K, number>();
  private total = 0;

  constructor(
    /** Most units one key may hold. */
    readonly perKey: number,
    /** Most units all keys together may hold. */
    readonly limit = Number.POSITIVE_INFINITY,
  ) {}

  /** Units held, all keys. */
  get used(): number {
    return this.total;
  }

  /** Keys holding anything. */
  get keys(): number {
    return this.held.size;
  }

  usedBy(key: K): number {
    return this.held.get(key) ?? 0;
  }

  /** What `key` could still take. */
  available(key: K): number {
    return Math.max(0, Math.min(this.limit - this.total, this.perKey - this.usedBy(key)));
  }

  /** Grants up to `want` units to `key`, or 0 (and nothing taken) when not even `min` is left. */
  take(key: K, want = 1, min = want): number {
    const granted = Math.min(want, this.available(key));
    if (granted < min || granted <= 0) return 0;
    this.total += granted;
    this.held.set(key, this.usedBy(key) + granted);
    return granted;
  }

  /** Gives back what `key` took; more than it holds gives back what it holds. */
  give(key: K, amount = 1): void {
    const mine = this.usedBy(key);
    const back = Math.min(Math.max(0, amount), mine);
    if (back === 0) return;
    this.total -= back;
    if (mine - back > 0) this.held.set(key, mine - back);
    else this.held.delete(key);
  }
}
