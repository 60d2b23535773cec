/**
 * DNS over one TCP byte stream (RFC 7766: length-prefixed, pipelined): a socket of the standalone
 * listener, or a guest connection the stack hands over as a Duplex. The stream belongs to an
 * untrusted peer and to whoever created it: it may arrive destroyed, emit 'error' at any time,
 * stop reading, or go quiet — each ends this connection only, and gives its slot back.
 */
import { type Duplex, finished } from "node:stream";
import type { Clock, Logger } from "@desktopd/core";
import { type ClientLimiter, clientAddress } from "./limiter.js";

export interface TcpCounters {
  open: number;
  total: number;
  /** Closed for `tcpIdleMs` without a byte from the client. */
  idleClosed: number;
}

export interface StreamServerOptions {
  handle(message: Buffer, client: string): Promise<Buffer | undefined>;
  /** Connections per client address and in total. */
  connections: ClientLimiter;
  /** Unanswered queries per connection before it is no longer read. */
  maxInflight: number;
  idleMs: number;
  clock: Clock;
  log: Logger;
  counters: TcpCounters;
  /** Counts a limit hit: "tcp-client", "tcp-connections" (refused), "tcp-pipeline" (reading paused). */
  limited(reason: string): void;
  malformed(reason: string): void;
}

export function createStreamServer(o: StreamServerOptions): (stream: Duplex, client: string) => void {
  return (stream, client) => {
    // Before anything else can fail: an unheard 'error' would be thrown by the emitter.
    stream.on("error", () => {});
    // Torn down before it got here (a reset during the handshake): nothing to serve or count.
    if (stream.destroyed) return;
    const address = clientAddress(client);
    const refused = o.connections.acquire(address);
    if (refused) {
      o.limited(refused === "client" ? "tcp-client" : "tcp-connections");
      stream.destroy();
      return;
    }
    o.counters.open++;
    o.counters.total++;

    let buf: Buffer = Buffer.alloc(0);
    let pending = 0;
    let ended = false;
    let paused = false;
    let done = false;
    let cancelIdle = () => {};
    const touch = () => {
      cancelIdle();
      const idle = o.clock.setTimer(() => {
        o.counters.idleClosed++;
        stream.destroy();
      }, o.idleMs);
      cancelIdle = () => idle.cancel();
    };
    // Once, whichever way the stream ends: error, reset, our destroy, or both sides finished.
    finished(stream, (err) => {
      if (done) return;
      done = true;
      cancelIdle();
      if (err && !stream.destroyed) stream.destroy();
      o.connections.release(address);
      o.counters.open--;
    });

    const whole = () => buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0);
    // After the client's end, close once every whole query it sent is answered.
    const finish = () => {
      if (ended && pending === 0 && !whole() && !stream.writableEnded && !stream.destroyed) stream.end();
    };
    const send = (reply: Buffer) => {
      if (stream.destroyed || stream.writableEnded) return;
      const framed = Buffer.allocUnsafe(2 + reply.length);
      framed.writeUInt16BE(reply.length, 0);
      reply.copy(framed, 2);
      stream.write(framed);
    };
    // Takes whole frames off `buf` while the client has room: at most `maxInflight` unanswered
    // and answers it is not reading stop the parsing and the reading (backpressure), so a
    // pipelining or non-reading client holds one read chunk and a bounded write buffer.
    const pump = () => {
      while (!done && buf.length >= 2 && pending < o.maxInflight && !stream.writableNeedDrain) {
        const len = buf.readUInt16BE(0);
        if (len < 12) {
          // Not even a header: the stream cannot be trusted to stay in frame.
          o.malformed("tcp-framing");
          stream.destroy();
          return;
        }
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        pending++;
        // Responses go out as they are ready, not in order (RFC 7766 §6.2.1.1): ids match them up.
        o.handle(msg, client)
          .then((reply) => reply && send(reply))
          .catch((e: unknown) => o.log.warn({ err: e, client }, "dns over tcp: query failed"))
          .finally(() => {
            pending--;
            pump();
            finish();
          });
      }
      if (done) return;
      const full = pending >= o.maxInflight || stream.writableNeedDrain;
      if (full && !paused && pending >= o.maxInflight) o.limited("tcp-pipeline");
      paused = full;
      if (full) stream.pause();
      else if (!ended) stream.resume();
    };
    touch();
    stream.on("data", (chunk: unknown) => {
      if (!Buffer.isBuffer(chunk)) {
        // A stream in object or string mode is not a byte stream from a socket.
        o.malformed("tcp-framing");
        stream.destroy();
        return;
      }
      touch();
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      pump();
    });
    stream.on("drain", pump);
    stream.on("end", () => {
      ended = true;
      finish();
    });
  };
}
