/**
 * A guest link over a byte stream with qemu's length-prefixed framing: a unix or TCP socket
 * (qemu `-netdev stream` / `-netdev socket`) or a pair of pipes (stdio).
 *
 * Backpressure: received frames are handed to the stack synchronously as each chunk is read, so
 * nothing accumulates here but one partial frame; when the stack is busy the kernel's socket
 * buffer fills and the VMM stops taking frames from its guest. Towards the guest, frames beyond
 * `maxQueuedBytes` of unsent data are dropped ("queue-full") as a NIC's full ring would.
 */
import type { Readable, Writable } from "node:stream";
import { countDrop, type FrameReceiver, type FrameTransport, newTransportStats } from "@desktopd/core";
import { ETH_HEADER_LEN } from "../wire/ethernet.js";
import { LengthPrefixDecoder, lengthPrefix } from "./length-prefix.js";

const VLAN_TAG_LEN = 4;
/** Largest frame of the largest MTU (65520) with a VLAN tag. */
const DEFAULT_MAX_FRAME = 65_520 + ETH_HEADER_LEN + VLAN_TAG_LEN;
/** A length prefix beyond this is a broken or hostile stream, not a frame to skip. */
const MAX_SKIP = 256 * 1024;
const DEFAULT_MAX_QUEUED = 4 * 1024 * 1024;

export interface StreamTransportOptions {
  /** Name for logs, e.g. "qemu:/run/user/1000/desktopd/qemu.sock#1". */
  name: string;
  /** Frames longer than this are dropped as "oversize" (default: MTU 65520 + Ethernet + VLAN). */
  maxFrame?: number;
  /** Unsent bytes towards the guest beyond which frames are dropped (default 4 MiB). */
  maxQueuedBytes?: number;
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
  private readonly decoder: LengthPrefixDecoder;
  private readonly maxQueued: number;
  private corked = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** One socket for both directions (as opposed to stdin + stdout). */
  private readonly sameStream: boolean;

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    options: StreamTransportOptions,
  ) {
    this.name = options.name;
    this.sameStream = (input as unknown) === output;
    this.maxQueued = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED;
    this.decoder = new LengthPrefixDecoder(
      { minFrame: ETH_HEADER_LEN, maxFrame: options.maxFrame ?? DEFAULT_MAX_FRAME, maxSkip: MAX_SKIP },
      {
        frame: (frame) => {
          // A receiver that closed the link on an earlier frame of this chunk gets no more.
          if (this.closed) return;
          this.stats.framesIn++;
          this.stats.bytesIn += frame.length;
          this.receiver?.onFrame(frame);
        },
        drop: (reason) => countDrop(this.stats, reason),
      },
    );
  }

  start(receiver: FrameReceiver): void {
    if (this.receiver) throw new Error(`${this.name}: start() called twice`);
    this.receiver = receiver;
    this.input.on("data", (chunk: Buffer) => {
      const failure = this.decoder.push(chunk);
      if (failure) {
        countDrop(this.stats, "bad-length");
        this.shutdown(new Error(`${this.name}: ${failure}`));
      }
    });
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
    if (this.closed || !this.output.writable) {
      countDrop(this.stats, "link-down");
      return;
    }
    if (this.output.writableLength > this.maxQueued) {
      countDrop(this.stats, "queue-full");
      return;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
    // Frames sent in one turn of the event loop leave in one writev.
    if (!this.corked) {
      this.corked = true;
      this.output.cork();
      process.nextTick(() => {
        this.corked = false;
        this.output.uncork();
      });
    }
    this.output.write(lengthPrefix(frame.length));
    this.output.write(frame);
  }

  close(): Promise<void> {
    this.shutdown();
    return this.closing!;
  }

  private shutdown(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    if (this.decoder.midFrame) countDrop(this.stats, "truncated");
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
    this.receiver?.onClose?.(error);
  }
}
