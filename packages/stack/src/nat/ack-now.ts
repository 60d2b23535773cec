/**
 * Makes the kernel send the ACK it is holding back on a host socket (Linux's TCP_QUICKACK).
 *
 * Why: a NAT flow stops reading its host socket while the guest's side is full. Data that keeps
 * arriving meanwhile is not acknowledged at once: Linux delays the ACK when reading is what would
 * open the window. The host's sender then hears nothing within its loss-probe timeout (2–4 ms on
 * loopback) and sends data again that was never lost. Each guest ACK that leaves the flow paused
 * lets that held ACK go, as a read would.
 */
import type * as net from "node:net";
import { type Libc, loadLibc } from "../transport/libc.js";

const IPPROTO_TCP = 6;
const TCP_QUICKACK = 12;
const ON = Buffer.from(Int32Array.of(1).buffer);

let libc: Libc | undefined;
let loading: Promise<boolean> | undefined;

/**
 * Loads what `ackNow` needs; true once it can act. Linux only: elsewhere, or when koffi cannot
 * load, `ackNow` stays a no-op and the host's sender merely probes a little more.
 */
export function prepareAckNow(): Promise<boolean> {
  if (process.platform !== "linux") return Promise.resolve(false);
  loading ??= loadLibc().then(
    (loaded) => {
      libc = loaded;
      return true;
    },
    () => false,
  );
  return loading;
}

/** The descriptor under a connected `net.Socket` (libuv's, on Unix); undefined before or after. */
export function socketFd(socket: net.Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  return fd === undefined || fd < 0 ? undefined : fd;
}

/** Sends `socket`'s pending ACK now, if the kernel holds one; false if it could not ask. */
export function ackNow(socket: net.Socket): boolean {
  const fd = socketFd(socket);
  if (libc === undefined || fd === undefined) return false;
  return libc.setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, ON, ON.length) === 0;
}
