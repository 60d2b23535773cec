/**
 * Bytes written by the application and not yet acknowledged by the peer, as a list of
 * the caller's Buffers (no copy on write). `peek` returns a view when the range lies in
 * one chunk, and a copy only when it spans chunks.
 */
export class SendBuffer {
  private chunks: Buffer[] = [];
  /** Bytes of chunks[0] already acknowledged. */
  private headOffset = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  /** Takes ownership of `data`. */
  push(data: Buffer): void {
    if (data.length === 0) return;
    this.chunks.push(data);
    this.total += data.length;
  }

  /** Up to `len` bytes starting `offset` bytes after the first unacknowledged byte. */
  peek(offset: number, len: number): Buffer {
    let skip = offset + this.headOffset;
    let i = 0;
    while (i < this.chunks.length && skip >= this.chunks[i]!.length) {
      skip -= this.chunks[i]!.length;
      i++;
    }
    const first = this.chunks[i];
    if (!first) return Buffer.alloc(0);
    if (skip + len <= first.length) return first.subarray(skip, skip + len);
    const out = Buffer.allocUnsafe(Math.min(len, this.total - offset));
    let written = first.copy(out, 0, skip);
    for (i++; i < this.chunks.length && written < out.length; i++) {
      written += this.chunks[i]!.copy(
        out,
        written,
        0,
        Math.min(this.chunks[i]!.length, out.length - written),
      );
    }
    return out;
  }

  /** Drops `n` acknowledged bytes from the front. */
  consume(n: number): void {
    n = Math.min(n, this.total);
    this.total -= n;
    while (n > 0) {
      const head = this.chunks[0]!;
      const left = head.length - this.headOffset;
      if (n >= left) {
        n -= left;
        this.chunks.shift();
        this.headOffset = 0;
      } else {
        this.headOffset += n;
        n = 0;
      }
    }
  }

  clear(): void {
    this.chunks = [];
    this.headOffset = 0;
    this.total = 0;
  }
}
