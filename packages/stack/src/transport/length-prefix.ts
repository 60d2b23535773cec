/**
 * qemu's stream framing (`-netdev stream`, `-netdev socket`, and stdio): every Ethernet frame is
 * preceded by its length as a 32-bit big-endian integer. Pure: bytes in, frames and verdicts out.
 */

export const LENGTH_PREFIX_BYTES = 4;

/** The 4-byte header in front of a frame of `length` bytes. */
export function lengthPrefix(length: number): Buffer {
  const header = Buffer.allocUnsafe(LENGTH_PREFIX_BYTES);
  header.writeUInt32BE(length, 0);
  return header;
}

export interface LengthPrefixLimits {
  /** Frames shorter than this (an Ethernet header) are skipped and reported as "truncated". */
  minFrame: number;
  /** Frames longer than this are skipped and reported as "oversize". */
  maxFrame: number;
  /**
   * A length beyond this is not a frame a sane peer sends (a desynchronised or hostile stream):
   * the decoder stops and the link must be closed rather than skip gigabytes.
   */
  maxSkip: number;
}

export interface LengthPrefixSink {
  /**
   * A frame: a view of the chunk being pushed (`assembled` false), or a frame that was split
   * across chunks and joined (`assembled` true). With `reuseAssembly`, an assembled frame's
   * memory is used again for the next one once this call returns.
   */
  frame(frame: Buffer, assembled: boolean): void;
  /** A frame was skipped; the stream stays in sync. */
  drop(reason: "truncated" | "oversize"): void;
}

/**
 * Cuts a byte stream into frames. Whole frames inside one chunk are handed out as views of that
 * chunk (no copy); only a frame split across chunks is assembled, into a buffer of its own, or
 * with `reuseAssembly` into one buffer kept for every such frame (a sink that copies what it
 * keeps then makes no garbage per frame).
 */
export class LengthPrefixDecoder {
  private assembly: Buffer | undefined;
  /** Bytes of an incomplete header carried over to the next chunk. */
  private header = Buffer.alloc(LENGTH_PREFIX_BYTES);
  private headerFill = 0;
  /** The frame being assembled across chunks, or bytes still to skip. */
  private partial: Buffer | undefined;
  private partialFill = 0;
  private skipRemaining = 0;
  private failed: string | undefined;

  constructor(
    private readonly limits: LengthPrefixLimits,
    private readonly sink: LengthPrefixSink,
    private readonly reuseAssembly = false,
  ) {}

  /** True while a frame or header is incomplete: a close now cuts a frame short. */
  get midFrame(): boolean {
    return this.headerFill > 0 || this.partial !== undefined || this.skipRemaining > 0;
  }

  /**
   * Consumes one chunk. Returns undefined, or the reason the stream cannot be followed any more
   * (the caller closes the link; later calls return the same reason).
   */
  push(chunk: Buffer): string | undefined {
    if (this.failed) return this.failed;
    let pos = 0;
    while (pos < chunk.length) {
      if (this.skipRemaining > 0) {
        const n = Math.min(this.skipRemaining, chunk.length - pos);
        this.skipRemaining -= n;
        pos += n;
        continue;
      }
      if (this.partial) {
        const n = Math.min(this.partial.length - this.partialFill, chunk.length - pos);
        chunk.copy(this.partial, this.partialFill, pos, pos + n);
        this.partialFill += n;
        pos += n;
        if (this.partialFill === this.partial.length) {
          const frame = this.partial;
          this.partial = undefined;
          this.sink.frame(frame, true);
        }
        continue;
      }
      let length: number;
      if (this.headerFill === 0 && chunk.length - pos >= LENGTH_PREFIX_BYTES) {
        length = chunk.readUInt32BE(pos);
        pos += LENGTH_PREFIX_BYTES;
      } else {
        const n = Math.min(LENGTH_PREFIX_BYTES - this.headerFill, chunk.length - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + n);
        this.headerFill += n;
        pos += n;
        if (this.headerFill < LENGTH_PREFIX_BYTES) break;
        this.headerFill = 0;
        length = this.header.readUInt32BE(0);
      }
      if (length > this.limits.maxSkip) {
        this.failed = `frame length ${length} exceeds ${this.limits.maxSkip}`;
        return this.failed;
      }
      if (length < this.limits.minFrame || length > this.limits.maxFrame) {
        this.sink.drop(length < this.limits.minFrame ? "truncated" : "oversize");
        this.skipRemaining = length;
        continue;
      }
      if (chunk.length - pos >= length) {
        this.sink.frame(chunk.subarray(pos, pos + length), false);
        pos += length;
      } else {
        this.partial = this.assemblyFor(length);
        this.partialFill = 0;
      }
    }
    return undefined;
  }

  private assemblyFor(length: number): Buffer {
    if (!this.reuseAssembly) return Buffer.allocUnsafe(length);
    this.assembly ??= Buffer.allocUnsafeSlow(this.limits.maxFrame);
    return this.assembly.subarray(0, length);
  }
}
