import { Duplex } from "node:stream";
import { DialError } from "../errors.js";
import type { CloseReason, Connection } from "./connection.js";

/**
 * A TCP connection of the stack as a Node Duplex. Backpressure both ways: unread data
 * held in the readable buffer shrinks the window we advertise, and writes wait while the
 * connection's send buffer is full.
 */
export class TcpStream extends Duplex {
  private conn: Connection | undefined;
  private pendingWrite: ((error?: Error | null) => void) | undefined;
  bytesWritten = 0;
  bytesRead = 0;

  constructor(receiveBuffer: number) {
    super({ allowHalfOpen: true, readableHighWaterMark: receiveBuffer, writableHighWaterMark: 256 * 1024 });
  }

  /** Binds the connection; done right after construction (the connection's hooks need the stream first). */
  bind(conn: Connection): void {
    this.conn = conn;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    const conn = this.conn!;
    if (conn.isClosed) {
      callback(new DialError("closed", "connection closed"));
      return;
    }
    this.bytesWritten += chunk.length;
    if (conn.send(chunk)) callback();
    else this.pendingWrite = callback;
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.conn!.close();
    callback();
  }

  override _read(): void {
    this.conn?.receiveSpaceOpened();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // After a clean end both ways (autoDestroy right after our FIN) the connection finishes on
    // its own; a reset there would cut the peer's last ACK short. Anything else is an abort.
    const graceful = !error && this.readableEnded && this.conn?.isClosing === true;
    if (this.conn && !this.conn.isClosed && !graceful) this.conn.abort();
    const pending = this.pendingWrite;
    this.pendingWrite = undefined;
    pending?.(error ?? new DialError("closed", "connection closed"));
    callback(error);
  }

  // ---- Called by the connection's hooks ----

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
    if (reason === "closed" || reason === "aborted") {
      // A graceful close ends both directions already; make sure nothing waits forever.
      if (this.pendingWrite) this.destroy();
      else if (!this.readableEnded) this.push(null);
      return;
    }
    const message =
      reason === "reset"
        ? "connection reset by guest"
        : reason === "refused"
          ? "connection refused"
          : "connection timed out";
    this.destroy(
      new DialError(reason === "reset" ? "reset" : reason === "refused" ? "refused" : "timeout", message),
    );
  }
}
