import type { Payload } from "../wire/payload.js";

/**
 * Bytes written by the application and not yet acknowledged by the peer, as a list of
 * the caller's Buffers (no copy on write). `views` returns views only; `peek` one Buffer, a
 * copy when the range spans chunks.
 */
/** Most views one segment is given as; beyond, its bytes are joined into one buffer. */
export const MAX_VIEWS = 16;

export class SendBuffer {
  /** `release`: told of each pushed buffer once the buffer holds none of its bytes any more. */
  constructor(private readonly release?: (chunk: Buffer) => void) {}

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
    let { index: i, skip } = this.locate(offset);
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

  /**
   * Up to `len` bytes starting `offset` bytes after the first unacknowledged byte, as views of
   * the chunks they lie in: one Buffer, or several when the range spans chunks. Never a copy.
   */
  views(offset: number, len: number): Payload {
    let { index: i, skip } = this.locate(offset);
    const first = this.chunks[i];
    if (!first) return Buffer.alloc(0);
    if (skip + len <= first.length) return first.subarray(skip, skip + len);
    const parts = [first.subarray(skip)];
    let left = len - parts[0]!.length;
    for (i++; i < this.chunks.length && left > 0; i++) {
      const chunk = this.chunks[i]!;
      const part = left >= chunk.length ? chunk : chunk.subarray(0, left);
      parts.push(part);
      left -= part.length;
    }
    // Many small writes under one segment: one copy beats a long iovec (and writev's limits).
    return parts.length > MAX_VIEWS ? Buffer.concat(parts) : parts;
  }

  /** The chunk holding the byte `offset` bytes after the first unacknowledged one, and where in it. */
  private locate(offset: number): { index: number; skip: number } {
    let skip = offset + this.headOffset;
    let index = 0;
    while (index < this.chunks.length && skip >= this.chunks[index]!.length) {
      skip -= this.chunks[index]!.length;
      index++;
    }
    return { index, skip };
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
        this.release?.(head);
      } else {
        this.headOffset += n;
        n = 0;
      }
    }
  }

  clear(): void {
    if (this.release) for (const chunk of this.chunks) this.release(chunk);
    this.chunks = [];
    this.headOffset = 0;
    this.total = 0;
  }
}
