/**
 * Reads of a socket into one shared buffer instead of a fresh one per read.
 *
 * Node gives every read of a socket a new 64 KiB ArrayBuffer. At gigabits per second those
 * buffers are dead within microseconds, but V8 only frees them in a collection, and their bytes
 * pile up until it runs full mark-compacts every few milliseconds: a port forward into a guest at
 * MTU 65520 spent its time there and moved 3 Gbit/s instead of 7. A socket created with `onread`
 * reads into the caller's buffer, but `net.Server` takes no such option (Node 20 to 24), and a
 * socket some other code connected was created without it. So the socket's libuv handle moves
 * under a new Socket that has one.
 */
import net from "node:net";
import type { Writable } from "node:stream";
import type { SlabPool } from "./slab-pool.js";

/** libuv hands each read to its callback before the next read: one buffer serves every socket. */
const LANDING = Buffer.allocUnsafeSlow(64 * 1024);

/** The fields of a socket that the move touches (Node's own, stable since Node 0.x). */
interface SocketInternals {
  _handle: object | null;
  _server: net.Server | null;
  server: net.Server | null;
}

/**
 * Re-homes `original` onto a Socket whose reads land in the shared buffer. `original` must be a
 * plain TCP socket (not TLS), connected or accepted with `pauseOnConnect`, with nothing buffered
 * either way (see `canLandReads`). `receive` gets each read as a view that is valid only during
 * the call: it must copy what it keeps. Returning false stops reading until `resume()`. The new
 * socket starts paused, keeps `allowHalfOpen`, and counts as its server's connection in the old
 * one's place; drop the old one, whose listeners hear nothing more.
 *
 * Where a Node.js does not expose the handle, the old socket is returned and reads arrive as
 * `'data'` events handed to `receive` the same way.
 */
export function withLandingReads(original: net.Socket, receive: (bytes: Buffer) => boolean): net.Socket {
  const old = original as unknown as SocketInternals;
  if (old._handle === null || typeof old._handle !== "object") return viaDataEvents(original, receive);
  original.pause();
  const socket = new net.Socket({
    handle: old._handle,
    allowHalfOpen: original.allowHalfOpen,
    pauseOnCreate: true,
    readable: true,
    writable: true,
    onread: {
      buffer: LANDING,
      callback: (n: number, buffer: Uint8Array) => receive((buffer as Buffer).subarray(0, n)),
    },
  } as net.SocketConstructorOpts);
  const moved = socket as unknown as SocketInternals;
  // The server counts its connections down when one is destroyed: the new owner does that now.
  moved._server = old._server;
  moved.server = old.server;
  old._server = null;
  // Inert from here on: nothing the old object does can reach the handle.
  old._handle = null;
  return socket;
}

function viaDataEvents(socket: net.Socket, receive: (bytes: Buffer) => boolean): net.Socket {
  socket.on("data", (bytes: Buffer) => {
    if (!receive(bytes)) socket.pause();
  });
  return socket;
}

/**
 * Whether `socket` can move (`withLandingReads`) without losing anything: a plain TCP socket,
 * connected, with no bytes waiting in its read buffer or in a write still in progress.
 */
export function canLandReads(socket: unknown): socket is net.Socket {
  return (
    socket instanceof net.Socket &&
    socket.constructor === net.Socket &&
    !socket.connecting &&
    !socket.destroyed &&
    socket.readableLength === 0 &&
    socket.writableLength === 0
  );
}

/**
 * Hands one landed read on to `target`: a copy in `pool`, given back from the write's callback
 * (the target must be done with a chunk by then, as a `net.Socket` is). False: stop reading, the
 * target is full (resume on its 'drain') or done.
 */
export function writeCopy(target: Writable, pool: SlabPool, bytes: Buffer): boolean {
  if (target.destroyed || target.writableEnded) return false;
  const chunk = pool.copy(bytes);
  return target.write(chunk, () => pool.release(chunk));
}
