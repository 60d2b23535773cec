import { Duplex } from "node:stream";
import { DialError } from "../errors.js";
import type { CloseReason } from "./connection.js";

/** What a stream asks of the flow that owns its connection. */
export interface StreamOwner {
  /** Queues data for the peer; false: wait for `sendSpace()`; "closed": the connection is gone. */
  send(chunk: Buffer): boolean | "closed";
  /** Our side is done writing (FIN after the queued data). */
  end(): void;
  /** The reader consumed data: the window may open. */
  readSpace(): void;
  /** The stream is destroyed; `unread` bytes were left in its buffer. */
  streamDestroyed(error: Error | null, peerEnded: boolean, unread: number): void;
}

/**
 * Most bytes a writer may queue in the stream itself before `write()` asks it to wait: the
 * connection's send buffer holds the rest, so this stays small and is not charged to a budget.
 */
const WRITE_QUEUE = 64 * 1024;

/**
 * A TCP connection of the stack as a Node Duplex. Backpressure both ways: unread data
 * held in the readable buffer shrinks the window we advertise, and writes wait while the
 * connection's send buffer is full. A written chunk is copied: once its callback ran, the writer
 * may reuse the memory, as with a `net.Socket`.
 *
 * The flow that creates it listens for 'error' from birth, so an error emitted before user code
 * attached its own listener never ends the process; user code sees it through its own listener,
 * or through `destroyed`/`errored` when it arrived first.
 */
export class TcpStream extends Duplex {
  private pendingWrite: ((error?: Error | null) => void) | undefined;
  bytesWritten = 0;
  bytesRead = 0;

  constructor(
    private readonly owner: StreamOwner,
    receiveBuffer: number,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: receiveBuffer, writableHighWaterMark: WRITE_QUEUE });
  }

  // Each callback below runs inside Node's stream machinery, where a throw would escape to the
  // process: failures become this stream's error instead.

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    try {
      const accepted = this.owner.send(chunk);
      if (accepted === "closed") {
        callback(new DialError("closed", "connection closed"));
        return;
      }
      this.bytesWritten += chunk.length;
      if (accepted) callback();
      else this.pendingWrite = callback;
    } catch (error) {
      callback(error as Error);
    }
  }

  override _final(callback: (error?: Error | null) => void): void {
    try {
      this.owner.end();
      callback();
    } catch (error) {
      callback(error as Error);
    }
  }

  override _read(): void {
    try {
      this.owner.readSpace();
    } catch (error) {
      this.destroy(error as Error);
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    let failure = error;
    try {
      this.owner.streamDestroyed(error, this.readableEnded, this.readableLength);
    } catch (e) {
      failure ??= e as Error;
    }
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.(failure ?? new DialError("closed", "connection closed"));
    callback(failure);
  }

  /**
   * Ending a stream that has finished does nothing, as in Node, minus the error Node builds and
   * drops when no callback takes it: Node's HTTP server ends every connection whose client ended,
   * finished or not, and that stack trace was a measurable cost of each proxied request.
   */
  override end(...args: unknown[]): this {
    if (args.length === 0 && this.writableFinished) return this;
    return (Duplex.prototype.end as (...a: unknown[]) => this).apply(this, args);
  }

  // ---- Called by the owning flow ----

  deliver(data: Buffer): void {
    this.bytesRead += data.length;
    this.push(data);
  }

  peerFinished(): void {
    this.push(null);
  }

  sendSpace(): void {
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.();
  }

  connectionClosed(reason: CloseReason): void {
    if (this.destroyed) return;
    if (reason === "closed" || reason === "aborted") {
      // A graceful close ends both directions already; make sure nothing waits forever.
      if (this.pendingWrite) this.destroy();
      else if (!this.readableEnded) this.push(null);
      return;
    }
    this.destroy(closeError(reason));
  }
}

export function closeError(reason: "reset" | "refused" | "timeout"): DialError {
  const message =
    reason === "reset"
      ? "connection reset by guest"
      : reason === "refused"
        ? "connection refused"
        : "connection timed out";
  return new DialError(reason, message);
}
