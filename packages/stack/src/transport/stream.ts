/**
 * A guest link over a byte stream with qemu's length-prefixed framing: a unix or TCP socket
 * (qemu `-netdev stream` / `-netdev socket`) or a pair of pipes (stdio).
 *
 * Memory: a link that owns its socket moves it under one whose reads land in a shared buffer, and
 * lends frames from there to a receiver that copies what it keeps. Frames given in parts are
 * copied into the link's slabs until written. Neither makes a buffer per frame for V8 to collect.
 *
 * Backpressure: received frames are handed to the stack synchronously as each chunk is read, so
 * nothing accumulates here but one partial frame; when the stack is busy the kernel's socket
 * buffer fills and the VMM stops taking frames from its guest. Towards the guest, frames beyond
 * `maxQueuedBytes` of unsent data are dropped ("queue-full") as a NIC's full ring would.
 */
import type * as net from "node:net";
import type { Readable, Writable } from "node:stream";
import {
  canLandReads,
  countDrop,
  type FrameReceiver,
  type FrameTransport,
  newTransportStats,
  SlabPool,
  systemClock,
  withLandingReads,
} from "@desktopd/core";
import { ETH_HEADER_LEN } from "../wire/ethernet.js";
import { payloadLength } from "../wire/payload.js";
import { LENGTH_PREFIX_BYTES, LengthPrefixDecoder, lengthPrefix } from "./length-prefix.js";

const VLAN_TAG_LEN = 4;
/** Largest frame of the largest MTU (65520) with a VLAN tag. */
const DEFAULT_MAX_FRAME = 65_520 + ETH_HEADER_LEN + VLAN_TAG_LEN;
/** A length prefix beyond this is a broken or hostile stream, not a frame to skip. */
const MAX_SKIP = 256 * 1024;
const DEFAULT_MAX_QUEUED = 4 * 1024 * 1024;
const POOL_SLAB = 256 * 1024;

export interface StreamTransportOptions {
  /** Name for logs, e.g. "qemu:/run/user/1000/desktopd/qemu.sock#1". */
  name: string;
  /** Frames longer than this are dropped as "oversize" (default: MTU 65520 + Ethernet + VLAN). */
  maxFrame?: number;
  /** Unsent bytes towards the guest beyond which frames are dropped (default 4 MiB). */
  maxQueuedBytes?: number;
  /**
   * The link owns the socket (one plain TCP or unix socket for both directions): at start it may
   * move the socket's handle under a socket of its own whose reads land in one shared buffer,
   * and lend frames from it to a receiver that accepts them. The socket passed in then hears and
   * does nothing more: close the link with `close()`, learn of its end from `onClosed`.
   * Default false.
   */
  ownsSocket?: boolean;
  /** Called once the link is closed and its socket released, whatever closed it. */
  onClosed?: () => void;
}

/** Frames over one duplex stream (a socket) or a readable/writable pair (stdin/stdout). */
export function streamTransport(
  input: Readable,
  output: Writable,
  options: StreamTransportOptions,
): FrameTransport {
  return new StreamTransport(input, output, options);
}

class StreamTransport implements FrameTransport {
  readonly name: string;
  readonly stats = newTransportStats();
  private receiver: FrameReceiver | undefined;
  private decoder: LengthPrefixDecoder | undefined;
  private readonly maxFrame: number;
  private readonly maxQueued: number;
  /** Frames given in parts, copied until the socket has written them. */
  private readonly pool: SlabPool;
  private corked = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** One socket for both directions (as opposed to stdin + stdout). */
  private readonly sameStream: boolean;

  constructor(
    private input: Readable,
    private output: Writable,
    private readonly options: StreamTransportOptions,
  ) {
    this.name = options.name;
    this.sameStream = (input as unknown) === output;
    this.maxFrame = options.maxFrame ?? DEFAULT_MAX_FRAME;
    this.maxQueued = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED;
    // Enough for a full queue; past it (or past the queue) copies are buffers of their own.
    this.pool = new SlabPool({
      slabSize: POOL_SLAB,
      maxSlabs: Math.ceil(this.maxQueued / POOL_SLAB) + 2,
      maxFree: 4,
      clock: systemClock,
    });
  }

  start(receiver: FrameReceiver): void {
    if (this.receiver) throw new Error(`${this.name}: start() called twice`);
    this.receiver = receiver;
    const landing = this.options.ownsSocket === true && this.sameStream && canLandReads(this.input);
    // Reads land in one buffer that the next read overwrites: frames are lent from it to a
    // receiver that copies what it keeps, and copied for any other.
    const lend = landing && receiver.acceptsLent === true;
    const limits = { minFrame: ETH_HEADER_LEN, maxFrame: this.maxFrame, maxSkip: MAX_SKIP };
    const decoder = new LengthPrefixDecoder(
      limits,
      {
        frame: (frame, assembled) => {
          // A receiver that closed the link on an earlier frame of this chunk gets no more.
          if (this.closed) return;
          this.stats.framesIn++;
          this.stats.bytesIn += frame.length;
          if (lend) receiver.onFrame(frame, { lent: true });
          else receiver.onFrame(landing && !assembled ? Buffer.from(frame) : frame);
        },
        drop: (reason) => countDrop(this.stats, reason),
      },
      lend,
    );
    this.decoder = decoder;
    const push = (chunk: Buffer): boolean => {
      const failure = decoder.push(chunk);
      if (failure) {
        countDrop(this.stats, "bad-length");
        this.shutdown(new Error(`${this.name}: ${failure}`));
      }
      return true;
    };
    if (landing) {
      const socket = withLandingReads(this.input as net.Socket, push);
      this.input = socket;
      this.output = socket;
      socket.resume();
    } else this.input.on("data", push);
    this.input.once("end", () => this.shutdown());
    this.input.once("close", () => this.shutdown());
    this.input.once("error", (err) => this.shutdown(err));
    this.output.once("error", (err) => this.shutdown(err));
    if (!this.sameStream) this.output.once("close", () => this.shutdown());
    // Closed before start (a peer that hung up at once): its events are gone, so report it now.
    if (this.input.destroyed || this.input.readableEnded || (!this.sameStream && this.output.destroyed))
      this.shutdown();
  }

  send(frame: Buffer): void {
    if (!this.admits(frame.length)) return;
    this.corkForTurn();
    this.output.write(lengthPrefix(frame.length));
    this.output.write(frame);
  }

  /** The parts are copied, length prefix first, into one chunk of the link's pool: one write. */
  sendv(parts: readonly Buffer[]): void {
    const length = payloadLength(parts);
    if (!this.admits(length)) return;
    const pool = this.pool;
    const chunk = pool.take(LENGTH_PREFIX_BYTES + length);
    chunk.writeUInt32BE(length, 0);
    let at = LENGTH_PREFIX_BYTES;
    for (const part of parts) at += part.copy(chunk, at);
    this.corkForTurn();
    this.output.write(chunk, () => pool.release(chunk));
  }

  /** Whether a frame of `length` bytes goes out now; counted either way. */
  private admits(length: number): boolean {
    if (this.closed || !this.output.writable) {
      countDrop(this.stats, "link-down");
      return false;
    }
    if (this.output.writableLength > this.maxQueued) {
      countDrop(this.stats, "queue-full");
      return false;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += length;
    return true;
  }

  /** Frames sent in one turn of the event loop leave in one writev. */
  private corkForTurn(): void {
    if (this.corked) return;
    this.corked = true;
    this.output.cork();
    process.nextTick(() => {
      this.corked = false;
      this.output.uncork();
    });
  }

  close(): Promise<void> {
    this.shutdown();
    return this.closing!;
  }

  private shutdown(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (this.decoder?.midFrame) countDrop(this.stats, "truncated");
    // Frames sent this turn are still corked: hand them to the kernel before the socket goes.
    if (this.corked) {
      this.corked = false;
      this.output.uncork();
    }
    this.closing = new Promise<void>((resolve) => {
      const done = () => resolve();
      // A socket is both ends: destroying it once closes the link; stdio leaves process.stdin alone.
      this.input.removeAllListeners("data");
      this.input.pause();
      if (this.sameStream) {
        if (this.input.destroyed) done();
        else this.input.once("close", done).destroy();
      } else {
        this.output.end(done);
      }
    });
    this.pool.close();
    const onClosed = this.options.onClosed;
    if (onClosed) void this.closing.then(onClosed);
    this.receiver?.onClose?.(error);
  }
}
