/** The sender's view of a loopback TCP socket (Linux's TCP_INFO), read through koffi for tests. */
import type net from "node:net";
import { socketFd } from "../../src/nat/ack-now.js";
import { loadLibc } from "../../src/transport/libc.js";

const IPPROTO_TCP = 6;
const TCP_INFO = 11;
// Offsets in struct tcp_info (<linux/tcp.h>).
const UNACKED = 24;
const TOTAL_RETRANS = 100;

export interface TcpInfo {
  /** Segments sent and not yet acknowledged. */
  unacked: number;
  /** Segments sent again over the connection's life. */
  totalRetrans: number;
}

export async function tcpInfo(socket: net.Socket): Promise<TcpInfo> {
  const libc = await loadLibc();
  const fd = socketFd(socket);
  if (fd === undefined) throw new Error("the socket has no descriptor");
  const info = Buffer.alloc(256);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  if (libc.getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, len) !== 0) {
    throw new Error(`getsockopt(TCP_INFO) failed: errno ${libc.errno()}`);
  }
  return { unacked: info.readUInt32LE(UNACKED), totalRetrans: info.readUInt32LE(TOTAL_RETRANS) };
}
