/**
 * A raw IPv4 ICMP socket through koffi (Node has none): what relays a guest's ping to the world
 * when desktopd runs as root (CAP_NET_RAW). sendto() is quick and non-blocking; a receive loop of
 * blocking recvfrom() calls runs on a libuv worker thread with a one-second timeout, so close()
 * never waits long. Each packet received is a whole IPv4 packet (the kernel gives raw sockets the
 * header), every ICMP packet the host receives: the relay picks out its own.
 */
import { TransportError } from "../errors.js";
import { errnoName, type Libc, loadLibc } from "./libc.js";

const AF_INET = 2;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_ICMP = 1;
const SOL_SOCKET = 1;
const SO_RCVTIMEO = 20;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;
const EINTR = 4;
const MAX_PACKET = 65_536;

export class RawIcmpSocket {
  private closed = false;
  private loopDone: Promise<void> = Promise.resolve();
  private buffer: { base: bigint; view: Buffer } | undefined;

  private constructor(
    private readonly c: Libc,
    private readonly fd: number,
  ) {}

  /** Opens the socket; rejects with a TransportError naming the errno (EPERM without CAP_NET_RAW). */
  static async open(): Promise<RawIcmpSocket> {
    const c = await loadLibc();
    const fd = c.socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    if (fd < 0) throw new TransportError(`raw ICMP socket: ${errnoName(c.errno())}`);
    // struct timeval { 1 s, 0 }: the receive loop looks at `closed` at least once a second.
    const timeout = Buffer.alloc(16);
    timeout.writeBigInt64LE(1n, 0);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, timeout, timeout.length);
    return new RawIcmpSocket(c, fd);
  }

  /** Sends an ICMP message (checksum filled by the caller) to `dst`, an IPv4 address as a number. */
  send(dst: number, icmp: Buffer): boolean {
    if (this.closed) return false;
    const addr = Buffer.alloc(16);
    addr.writeUInt16LE(AF_INET, 0);
    addr.writeUInt32BE(dst >>> 0, 4);
    return this.c.sendto(this.fd, icmp, icmp.length, MSG_DONTWAIT, addr, addr.length) >= 0;
  }

  /** Calls `onPacket` with a copy of every IPv4 packet received, until close(). */
  receive(onPacket: (packet: Buffer) => void, onError: (error: Error) => void): void {
    const base = this.c.alloc(MAX_PACKET);
    const view = Buffer.from(this.c.view(base, MAX_PACKET));
    this.buffer = { base, view };
    this.loopDone = new Promise<void>((resolve) => {
      const next = () => {
        if (this.closed) return resolve();
        this.c.recvfrom.async(this.fd, base, MAX_PACKET, 0, null, null, (err: unknown, n: number) => {
          if (this.closed) return resolve();
          if (err || n < 0) {
            const code = err ? undefined : this.c.errno();
            if (code === EAGAIN || code === EINTR) return next();
            resolve();
            onError(
              new TransportError(`recvfrom on the raw ICMP socket: ${err ? String(err) : errnoName(code!)}`),
            );
            return;
          }
          try {
            onPacket(Buffer.from(view.subarray(0, n)));
          } finally {
            next();
          }
        });
      };
      next();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The worker's recvfrom returns within its one-second timeout; the fd and buffer outlive it.
    await this.loopDone;
    this.c.close(this.fd);
    if (this.buffer) this.c.free(this.buffer.base);
  }
}
