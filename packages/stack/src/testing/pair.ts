/**
 * An in-memory Ethernet link for unit tests: two FrameTransports joined back to back.
 * Delivery is asynchronous (one setImmediate per batch) and in order, like a real link, so a
 * stack under test never re-enters itself from inside `send`.
 */

import { countDrop, type FrameReceiver, type FrameTransport, newTransportStats } from "@desktopd/core";
import { TransportError } from "../errors.js";

export interface TransportPairOptions {
  /** Frames longer than this are dropped as "oversize" (default 65535 + 18). */
  maxFrameLength?: number;
  /**
   * Frames queued towards a side that has not started yet or has not drained, beyond which
   * sends are dropped as "queue-full" (default 4096; a kernel TAP queues 1000).
   */
  queueLimit?: number;
  /**
   * Lends frames as a TAP does (`FrameMeta.lent`) to a receiver that accepts them: each one is
   * copied into one reused buffer, which is overwritten with 0xEE once `onFrame` returns, so
   * whatever a receiver kept a view of shows up as garbage (default false).
   */
  lend?: boolean;
}

class PairEnd implements FrameTransport {
  readonly stats = newTransportStats();
  peer!: PairEnd;
  private receiver: FrameReceiver | undefined;
  private readonly queue: Buffer[] = [];
  private scheduled = false;
  private closed = false;
  /** The other end closed: deliver what it sent before, then report the link gone. */
  private peerGone = false;

  /** The one buffer lent frames are copied into (see `TransportPairOptions.lend`). */
  private readonly loan: Buffer | undefined;

  constructor(
    readonly name: string,
    private readonly maxFrameLength: number,
    private readonly queueLimit: number,
    lend: boolean,
  ) {
    this.loan = lend ? Buffer.alloc(maxFrameLength) : undefined;
  }

  send(frame: Buffer): void {
    const refused =
      this.closed || this.peerGone
        ? "link-down"
        : frame.length > this.maxFrameLength
          ? "oversize"
          : this.peer.enqueue(frame)
            ? undefined
            : "queue-full";
    if (refused) {
      countDrop(this.stats, refused);
      return;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
  }

  start(receiver: FrameReceiver): void {
    if (this.receiver) throw new TransportError(`${this.name}: start() called twice`);
    this.receiver = receiver;
    this.schedule();
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.queue.length = 0;
      this.receiver?.onClose?.();
      this.peer.hangUp();
    }
    return Promise.resolve();
  }

  private enqueue(frame: Buffer): boolean {
    if (this.closed || this.queue.length >= this.queueLimit) return false;
    this.queue.push(frame);
    this.schedule();
    return true;
  }

  private hangUp(): void {
    this.peerGone = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.closed || !this.receiver) return;
    if (this.queue.length === 0 && !this.peerGone) return;
    this.scheduled = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.scheduled = false;
    const receiver = this.receiver!;
    // Only what was queued before this turn; frames sent in response wait for the next turn.
    const batch = this.queue.splice(0, this.queue.length);
    for (const frame of batch) {
      if (this.closed) return;
      this.stats.framesIn++;
      this.stats.bytesIn += frame.length;
      if (this.loan && receiver.acceptsLent) {
        frame.copy(this.loan);
        receiver.onFrame(this.loan.subarray(0, frame.length), { lent: true });
        this.loan.fill(0xee, 0, frame.length);
      } else receiver.onFrame(frame);
    }
    if (this.closed) return;
    if (this.queue.length > 0) this.schedule();
    else if (this.peerGone) {
      this.closed = true;
      receiver.onClose?.(new TransportError(`${this.name}: peer closed the link`));
    }
  }
}

/**
 * Creates two transports joined by an in-memory link: a frame sent on one is delivered to the
 * other's receiver, in order, on a later turn of the event loop. Frames sent before the other
 * side starts are queued (up to `queueLimit`). Closing one side closes the other: frames sent
 * before the close are still delivered, then its receiver gets `onClose` with a TransportError.
 * Ownership of a sent frame passes to the receiver.
 */
export function createTransportPair(options: TransportPairOptions = {}): [FrameTransport, FrameTransport] {
  const maxFrameLength = options.maxFrameLength ?? 65535 + 18;
  const queueLimit = options.queueLimit ?? 4096;
  const lend = options.lend === true;
  const a = new PairEnd("pair:a", maxFrameLength, queueLimit, lend);
  const b = new PairEnd("pair:b", maxFrameLength, queueLimit, lend);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
