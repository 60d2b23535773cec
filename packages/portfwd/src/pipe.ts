/**
 * A host client socket ⇄ a target stream, both ways, with backpressure (pipe) and half-close:
 * an end from one side ends the other's write side and reading goes on. A failure on one side
 * destroys the other; a reset on either side resets the other, so neither takes an aborted stream
 * for a complete one.
 */
import { Socket } from "node:net";
import type { Duplex } from "node:stream";

/** Joins `client` and `target`; `count` sees every chunk ("in": client → target); `onClose` runs once both are closed. */
export function joinStreams(
  client: Socket,
  target: Duplex,
  count: (direction: "in" | "out", bytes: number) => void,
  onClose: (error?: Error) => void,
): void {
  let failure: Error | undefined;
  let open = 2;
  const closed = () => {
    if (--open === 0) onClose(failure);
  };
  client.on("data", (b: Buffer) => count("in", b.length));
  target.on("data", (b: Buffer) => count("out", b.length));
  client.pipe(target);
  target.pipe(client);
  client.on("error", (err) => {
    failure ??= err;
    abortTarget(target);
  });
  target.on("error", (err) => {
    failure ??= err;
    resetSocket(client);
  });
  // A side that closes without ending cleanly (destroyed, aborted) takes the other down with it;
  // one that ended reached the other through the pipe as end(), which still flushes.
  client.on("close", () => {
    if (!client.readableEnded) abortTarget(target);
    closed();
  });
  target.on("close", () => {
    if (!client.destroyed && (target.errored || !target.readableEnded)) client.destroy();
    closed();
  });
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
