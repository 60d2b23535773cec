/**
 * An ICMP echo socket of the host through koffi (Node has none), IPv4 or IPv6: what relays a
 * guest's ping to the world. Two kinds, tried in order:
 * - "dgram", the unprivileged ping socket (`socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)`), open to
 *   the groups in net.ipv4.ping_group_range (it covers IPv6 too). The kernel sets the identifier
 *   (the socket's own) and passes on only replies to it.
 * - "raw" (`SOCK_RAW`), which needs CAP_NET_RAW: the identifier is ours, and every ICMP packet
 *   the host receives arrives (IPv4 with its header), so replies are picked out here.
 * Either way the relay matches replies by identifier and sequence number. sendto() is quick and
 * non-blocking; a receive loop of blocking recvfrom() calls runs on a libuv worker thread with a
 * one-second timeout, so close() never waits long.
 */
import { TransportError } from "../errors.js";
import { finish, sum16 } from "../wire/checksum.js";
import {
  AF_INET,
  AF_INET6,
  EAGAIN,
  EINTR,
  errnoName,
  type Libc,
  loadLibc,
  MSG_DONTWAIT,
  SO_RCVTIMEO,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_RAW,
  SOL_SOCKET,
} from "./libc.js";

const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;

export type IcmpFamily = 4 | 6;
export type IcmpSocketKind = "dgram" | "raw";

const MAX_PACKET = 65_536;
/** struct sockaddr_in6, the larger of the two. */
const SOCKADDR_LEN = 28;

const ECHO_REQUEST = { 4: 8, 6: 128 } as const;
const ECHO_REPLY = { 4: 0, 6: 129 } as const;

/** One echo reply: who sent it (4 or 16 bytes), its identifier, sequence number and data. */
export interface EchoReply {
  from: Buffer;
  id: number;
  seq: number;
  payload: Buffer;
}

export class IcmpEchoSocket {
  private closed = false;
  private loopDone: Promise<void> = Promise.resolve();
  private native: { base: bigint; view: Buffer; addr: bigint; addrView: Buffer; alen: bigint } | undefined;

  private constructor(
    private readonly c: Libc,
    private readonly fd: number,
    readonly family: IcmpFamily,
    readonly kind: IcmpSocketKind,
  ) {}

  /**
   * Opens the first kind of `kinds` the host allows; rejects with a TransportError naming each
   * refusal (EACCES outside ping_group_range, EPERM without CAP_NET_RAW).
   */
  static async open(
    family: IcmpFamily,
    kinds: readonly IcmpSocketKind[] = ["dgram", "raw"],
  ): Promise<IcmpEchoSocket> {
    const c = await loadLibc();
    const refusals: string[] = [];
    for (const kind of kinds) {
      const fd = c.socket(
        family === 4 ? AF_INET : AF_INET6,
        (kind === "dgram" ? SOCK_DGRAM : SOCK_RAW) | SOCK_CLOEXEC,
        family === 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6,
      );
      if (fd < 0) {
        refusals.push(`${kind}: ${errnoName(c.errno())}`);
        continue;
      }
      // struct timeval { 1 s, 0 }: the receive loop looks at `closed` at least once a second.
      const timeout = Buffer.alloc(16);
      timeout.writeBigInt64LE(1n, 0);
      c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, timeout.length);
      return new IcmpEchoSocket(c, fd, family, kind);
    }
    throw new TransportError(`ICMPv${family === 4 ? 4 : 6} echo socket: ${refusals.join(", ")}`);
  }

  /** Sends an echo request to `dst` (4 or 16 bytes). The kernel sets a dgram socket's identifier. */
  send(dst: Buffer, id: number, seq: number, payload: Buffer): boolean {
    if (this.closed) return false;
    const message = Buffer.alloc(8 + payload.length);
    message[0] = ECHO_REQUEST[this.family];
    message.writeUInt16BE(id, 4);
    message.writeUInt16BE(seq, 6);
    payload.copy(message, 8);
    // ICMPv6's checksum covers a pseudo-header: the kernel fills it for both kinds of socket.
    if (this.family === 4) message.writeUInt16BE(finish(sum16(message, 0, message.length)), 2);
    const addr = Buffer.alloc(this.family === 4 ? 16 : SOCKADDR_LEN);
    addr.writeUInt16LE(this.family === 4 ? AF_INET : AF_INET6, 0);
    dst.copy(addr, this.family === 4 ? 4 : 8);
    return this.c.sendto(this.fd, message, message.length, MSG_DONTWAIT, addr, addr.length) >= 0;
  }

  /** Calls `onReply` for every echo reply received (copies), until close(). */
  receive(onReply: (reply: EchoReply) => void, onError: (error: Error) => void): void {
    const base = this.c.alloc(MAX_PACKET);
    const addr = this.c.alloc(SOCKADDR_LEN);
    const alen = this.c.alloc(4);
    const native = {
      base,
      view: Buffer.from(this.c.view(base, MAX_PACKET)),
      addr,
      addrView: Buffer.from(this.c.view(addr, SOCKADDR_LEN)),
      alen,
    };
    const alenView = Buffer.from(this.c.view(alen, 4));
    this.native = native;
    this.loopDone = new Promise<void>((resolve) => {
      const next = () => {
        if (this.closed) return resolve();
        alenView.writeUInt32LE(SOCKADDR_LEN, 0);
        this.c.recvfrom.async(this.fd, base, MAX_PACKET, 0, addr, alen, (err: unknown, n: number) => {
          if (this.closed) return resolve();
          if (err || n < 0) {
            const code = err ? undefined : this.c.errno();
            if (code === EAGAIN || code === EINTR) return next();
            resolve();
            onError(
              new TransportError(`recvfrom on the ICMP socket: ${err ? String(err) : errnoName(code!)}`),
            );
            return;
          }
          try {
            const reply = this.parse(native.view.subarray(0, n), native.addrView);
            if (reply) onReply(reply);
          } finally {
            next();
          }
        });
      };
      next();
    });
  }

  /** An echo reply out of what recvfrom gave, or undefined for anything else. */
  private parse(data: Buffer, addr: Buffer): EchoReply | undefined {
    let message = data;
    if (this.family === 4 && this.kind === "raw") {
      // A raw IPv4 socket gets the IP header too.
      if (data.length < 20) return undefined;
      message = data.subarray((data[0]! & 0x0f) * 4);
    }
    if (message.length < 8 || message[0] !== ECHO_REPLY[this.family] || message[1] !== 0) return undefined;
    const from = Buffer.from(this.family === 4 ? addr.subarray(4, 8) : addr.subarray(8, 24));
    return {
      from,
      id: message.readUInt16BE(4),
      seq: message.readUInt16BE(6),
      payload: Buffer.from(message.subarray(8)),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The worker's recvfrom returns within its one-second timeout; the fd and buffers outlive it.
    await this.loopDone;
    this.c.close(this.fd);
    if (this.native) {
      this.c.free(this.native.base);
      this.c.free(this.native.addr);
      this.c.free(this.native.alen);
    }
  }
}
