/**
 * A host client socket ⇄ a target stream, both ways, with backpressure and half-close: an end
 * from one side ends the other's write side and reading goes on. A failure on one side destroys
 * the other; a reset on either side resets the other, so neither takes an aborted stream for a
 * complete one.
 */
import { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { type SlabPool, writeCopy } from "@desktopd/core";

/**
 * Joins `client` and `target`; `count` sees every chunk ("in": client → target); `onClose` runs
 * once both are closed. The client's reads are not events: the returned function takes each one
 * (see `withLandingReads`) and writes a copy of it in `pool` to the target (`writeCopy`). False:
 * the target is full, stop reading until 'drain'.
 */
export function joinStreams(
  client: Socket,
  target: Duplex,
  pool: SlabPool,
  count: (direction: "in" | "out", bytes: number) => void,
  onClose: (error?: Error) => void,
): (bytes: Buffer) => boolean {
  let failure: Error | undefined;
  let open = 2;
  const closed = () => {
    if (--open === 0) onClose(failure);
  };
  target.on("data", (b: Buffer) => count("out", b.length));
  target.pipe(client);
  target.on("drain", () => client.resume());
  client.on("end", () => target.end());
  client.on("error", (err) => {
    failure ??= err;
    abortTarget(target);
  });
  target.on("error", (err) => {
    failure ??= err;
    resetSocket(client);
  });
  // A side that closes without ending cleanly (destroyed, aborted) takes the other down with it;
  // one that ended reached the other as end(), which still flushes.
  client.on("close", () => {
    if (!client.readableEnded) abortTarget(target);
    closed();
  });
  target.on("close", () => {
    if (!client.destroyed && (target.errored || !target.readableEnded)) client.destroy();
    closed();
  });
  return (bytes) => {
    if (target.destroyed || target.writableEnded) return false;
    count("in", bytes.length);
    return writeCopy(target, pool, bytes);
  };
}

/**
 * Resets a socket (RST) so its peer sees ECONNRESET. Once our FIN is queued, libuv refuses a reset
 * (uv_tcp_close_reset after uv_shutdown) and Node then never closes the handle, so a plain
 * destroy is all that is left.
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

/** Resets a host socket target (a stack stream resets on destroy already). */
export function abortTarget(target: Duplex): void {
  if (target instanceof Socket) resetSocket(target);
  else if (!target.destroyed) target.destroy();
}
