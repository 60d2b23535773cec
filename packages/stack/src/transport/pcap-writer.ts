/**
 * A classic libpcap file writer (the format tcpdump and Wireshark read everywhere): a 24-byte
 * global header, then a 16-byte header per record. Records are copied into 64 KiB chunks and
 * written with one writev per event-loop turn; when the disk falls behind, records beyond
 * `maxBufferBytes` are dropped and counted rather than queued without bound.
 */
import * as fs from "node:fs";
import { TransportError } from "../errors.js";

const PCAP_MAGIC_USEC = 0xa1b2c3d4;
export const PCAP_SNAPLEN = 262144;
export const LINKTYPE_ETHERNET = 1;
const GLOBAL_HEADER_LEN = 24;
const RECORD_HEADER_LEN = 16;
const CHUNK_LEN = 64 * 1024;

export interface PcapWriterOptions {
  /** Bytes queued for the disk beyond which records are dropped (default 8 MiB). */
  maxBufferBytes?: number;
  /** Wall-clock time in milliseconds since the epoch, fractional for microseconds. */
  now?: () => number;
  /** Called once when writing fails; the writer stops capturing after that. */
  onError?: (error: TransportError) => void;
}

export interface PcapStats {
  /** Records accepted (written or about to be). */
  records: number;
  /** Records dropped because the write buffer was full or the file failed. */
  dropped: number;
  bytesWritten: number;
}

/** The default `now`: the wall clock to the microsecond (Date.now() has only milliseconds). */
const wallClock = () => performance.timeOrigin + performance.now();

export class PcapWriter {
  readonly stats: PcapStats = { records: 0, dropped: 0, bytesWritten: 0 };
  private readonly fd: number;
  private readonly maxBufferBytes: number;
  private readonly now: () => number;
  private readonly onError: ((error: TransportError) => void) | undefined;
  private sealed: Buffer[] = [];
  private chunk: Buffer = Buffer.allocUnsafe(CHUNK_LEN);
  private used = 0;
  /** Bytes accepted but not yet confirmed written, including a write in flight. */
  private queued = 0;
  private writing = false;
  private flushScheduled = false;
  private failed = false;
  private closing: Promise<void> | undefined;
  private idle: (() => void) | undefined;

  constructor(
    readonly path: string,
    options: PcapWriterOptions = {},
  ) {
    this.maxBufferBytes = options.maxBufferBytes ?? 8 * 1024 * 1024;
    this.now = options.now ?? wallClock;
    this.onError = options.onError;
    try {
      this.fd = fs.openSync(path, "w");
    } catch (error) {
      throw new TransportError(`pcap: cannot create ${path}: ${(error as Error).message}`, { cause: error });
    }
    const header = this.reserve(GLOBAL_HEADER_LEN);
    // Written in host byte order, which the magic number announces to readers.
    header.writeUInt32LE(PCAP_MAGIC_USEC, 0);
    header.writeUInt16LE(2, 4);
    header.writeUInt16LE(4, 6);
    header.writeInt32LE(0, 8); // thiszone: timestamps are UTC
    header.writeUInt32LE(0, 12); // sigfigs
    header.writeUInt32LE(PCAP_SNAPLEN, 16);
    header.writeUInt32LE(LINKTYPE_ETHERNET, 20);
    this.scheduleFlush();
  }

  /** Copies `frame` into the buffer (the caller keeps ownership); drops it when full. */
  record(frame: Buffer): void {
    const captured = Math.min(frame.length, PCAP_SNAPLEN);
    const size = RECORD_HEADER_LEN + captured;
    if (this.closing || this.failed || this.queued + size > this.maxBufferBytes) {
      this.stats.dropped++;
      return;
    }
    const ms = this.now();
    const seconds = Math.floor(ms / 1000);
    const micros = Math.min(999_999, Math.floor((ms - seconds * 1000) * 1000));
    const out = this.reserve(size);
    out.writeUInt32LE(seconds >>> 0, 0);
    out.writeUInt32LE(micros, 4);
    out.writeUInt32LE(captured, 8);
    out.writeUInt32LE(frame.length, 12);
    frame.copy(out, RECORD_HEADER_LEN, 0, captured);
    this.stats.records++;
    this.scheduleFlush();
  }

  /** Writes what is buffered and closes the file; idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      while (this.writing || (!this.failed && (this.used > 0 || this.sealed.length > 0))) {
        if (!this.writing) this.flush();
        await new Promise<void>((resolve) => {
          this.idle = resolve;
        });
      }
      await new Promise<void>((resolve) => fs.close(this.fd, () => resolve()));
    })();
    return this.closing;
  }

  private reserve(size: number): Buffer {
    if (this.used + size > this.chunk.length) {
      this.seal();
      this.chunk = Buffer.allocUnsafe(Math.max(CHUNK_LEN, size));
    }
    const out = this.chunk.subarray(this.used, this.used + size);
    this.used += size;
    this.queued += size;
    return out;
  }

  private seal(): void {
    if (this.used === 0) return;
    this.sealed.push(this.chunk.subarray(0, this.used));
    this.chunk = Buffer.allocUnsafe(CHUNK_LEN);
    this.used = 0;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.writing) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.writing) this.flush();
    });
  }

  private flush(): void {
    this.seal();
    if (this.failed || this.sealed.length === 0) {
      this.wake();
      return;
    }
    const buffers = this.sealed;
    this.sealed = [];
    const total = buffers.reduce((n, b) => n + b.length, 0);
    this.writing = true;
    fs.writev(this.fd, buffers, (error, written) => {
      this.writing = false;
      this.queued -= total;
      this.stats.bytesWritten += written ?? 0;
      if (error || written !== total) {
        this.fail(error ?? new Error(`short write (${written} of ${total} bytes)`));
      } else if (this.used > 0 || this.sealed.length > 0) {
        // Records that arrived while writing: the next writev is not left to another turn.
        this.flush();
        return;
      }
      this.wake();
    });
  }

  private fail(cause: Error): void {
    if (this.failed) return;
    this.failed = true;
    this.sealed = [];
    this.used = 0;
    this.queued = 0;
    this.onError?.(new TransportError(`pcap: writing ${this.path} failed: ${cause.message}`, { cause }));
  }

  private wake(): void {
    const idle = this.idle;
    this.idle = undefined;
    idle?.();
  }
}
