/**
 * A UDP socket served in batches, bound through koffi (Node's dgram takes one system call and
 * several objects per datagram each way). A receive loop of blocking recvmmsg() calls runs on
 * a libuv worker thread and returns up to `batch` datagrams per wake-up; the answers given during
 * the batch leave together in one non-blocking sendmmsg() when it ends, and later answers in one
 * per turn of the event loop. The loop holds one of libuv's worker threads while the socket is
 * open. 64-bit Linux only: the struct layouts below are its.
 */
import { isIPv6 } from "node:net";
import { constants as osConstants } from "node:os";
import { DnsError, DnsSocketError } from "./errors.js";
import { canonicalIpv6, expandIpv6 } from "./name.js";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const MSG_TRUNC = 0x20;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_WAITFORONE = 0x10000;
const SHUT_RDWR = 2;
const EINTR = 4;
/** EAGAIN, ENOMEM, ENOBUFS. */
const TRANSIENT = new Set([11, 12, 105]);

// struct mmsghdr (a 56-byte msghdr, then msg_len, padded to 64), iovec, and room for the largest
// sockaddr (sockaddr_in6).
const MMSGHDR_LEN = 64;
const IOVEC_LEN = 16;
const NAME_LEN = 28;
const MSG_NAMELEN_AT = 8;
const MSG_FLAGS_AT = 48;
const MMSG_LEN_AT = 56;
const SLOT_HEADERS = MMSGHDR_LEN + IOVEC_LEN + NAME_LEN;

/** Client texts remembered by address and port: a flood from random ports must not grow it. */
const MAX_CLIENT_TEXTS = 4096;

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  getsockname: (fd: number, addr: Buffer, len: Buffer) => number;
  setsockopt: (fd: number, level: number, name: number, value: Buffer, len: number) => number;
  recvmmsg: {
    async: (
      fd: number,
      vec: bigint,
      n: number,
      flags: number,
      timeout: null,
      done: (err: unknown, n: number) => void,
    ) => void;
  };
  sendmmsg: (fd: number, vec: bigint, n: number, flags: number) => number;
  sendto: (fd: number, data: Buffer, len: number, flags: number, addr: Buffer, alen: number) => number;
  shutdown: (fd: number, how: number) => number;
  close: (fd: number) => number;
  errno: () => number;
  /** Native memory that stays put while the worker thread writes into it: its address and a view. */
  alloc: (bytes: number) => { address: bigint; view: Buffer; free: () => void };
}

let loaded: Promise<Libc> | undefined;

function loadLibc(): Promise<Libc> {
  loaded ??= import("koffi").then((mod) => {
    const koffi = mod.default;
    const lib = koffi.load("libc.so.6");
    const fn = (proto: string) => lib.func(proto) as never;
    return {
      socket: fn("int socket(int domain, int type, int protocol)"),
      bind: fn("int bind(int fd, const void *addr, uint32_t len)"),
      getsockname: fn("int getsockname(int fd, void *addr, void *len)"),
      setsockopt: fn("int setsockopt(int fd, int level, int name, const void *value, uint32_t len)"),
      recvmmsg: fn("int recvmmsg(int fd, uint64_t vec, unsigned int vlen, int flags, void *timeout)"),
      sendmmsg: fn("int sendmmsg(int fd, uint64_t vec, unsigned int vlen, int flags)"),
      sendto: fn(
        "intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)",
      ),
      shutdown: fn("int shutdown(int fd, int how)"),
      close: fn("int close(int fd)"),
      errno: () => koffi.errno(),
      alloc: (bytes: number) => {
        const ptr = koffi.alloc("uint8_t", bytes);
        return {
          address: BigInt(koffi.address(ptr)),
          view: Buffer.from(koffi.view(ptr, bytes)),
          free: () => koffi.free(ptr),
        };
      },
    };
  });
  loaded.catch(() => {
    loaded = undefined;
  });
  return loaded;
}

/** Whether this platform can have a batched socket at all (else use node:dgram). */
export function batchedUdpSupported(): boolean {
  return process.platform === "linux" && (process.arch === "x64" || process.arch === "arm64");
}

/** struct sockaddr_in or sockaddr_in6 for an address literal, or undefined for anything else. */
export function sockaddrOf(host: string, port: number): Buffer | undefined {
  const v4 = ipv4Bytes(host);
  if (v4) {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(port, 2);
    v4.copy(sa, 4);
    return sa;
  }
  // A zone index ("fe80::1%eth0") needs a scope id: dgram handles those.
  if (!isIPv6(host) || host.includes("%")) return undefined;
  const groups = expandIpv6(canonicalIpv6(host)).split(":");
  const sa = Buffer.alloc(NAME_LEN);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  for (let i = 0; i < 8; i++) sa.writeUInt16BE(Number.parseInt(groups[i]!, 16), 8 + 2 * i);
  return sa;
}

function ipv4Bytes(host: string): Buffer | undefined {
  const parts = host.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) < 256)) {
    return undefined;
  }
  return Buffer.from(parts.map(Number));
}

/** "address:port" of a sockaddr, as node:dgram spells its sender (IPv6 as RFC 5952 writes it). */
export function sockaddrText(view: Buffer, at: number): string {
  const port = view.readUInt16BE(at + 2);
  if (view.readUInt16LE(at) === AF_INET) {
    return `${view[at + 4]}.${view[at + 5]}.${view[at + 6]}.${view[at + 7]}:${port}`;
  }
  const a = at + 8;
  // An IPv4 sender on a dual-stack socket: ::ffff:a.b.c.d.
  if (view.readUInt32BE(a) === 0 && view.readUInt32BE(a + 4) === 0 && view.readUInt32BE(a + 8) === 0xffff) {
    return `::ffff:${view[a + 12]}.${view[a + 13]}.${view[a + 14]}.${view[a + 15]}:${port}`;
  }
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(view.readUInt16BE(a + 2 * i).toString(16));
  // The package's one RFC 5952 spelling (clientText memoises it per sender).
  return `${canonicalIpv6(groups.join(":"))}:${port}`;
}

/** The datagrams of one wake-up, valid only during the `onBatch` call they were given to. */
export interface DatagramBatch {
  readonly count: number;
  /** The bytes of datagram `i`: a view of memory the next batch reuses (copy what is kept). */
  data(i: number): Buffer;
  /** The datagram was longer than `maxDatagram` and was cut. */
  truncated(i: number): boolean;
  /** Its sender as "address:port". */
  client(i: number): string;
  /** Its sender, to answer later with `sendTo` (a copy). */
  sender(i: number): Buffer;
  /** Answers datagram `i`: sent with the others when the batch ends. */
  reply(i: number, data: Buffer): void;
}

export interface BatchUdpOptions {
  /** Datagrams per receive and per send call (default 64). */
  batch?: number;
  /** Receive room per datagram; longer ones are cut and flagged (default 4096). */
  maxDatagram?: number;
  /** SO_RCVBUF (default 1 MiB, capped by net.core.rmem_max). */
  recvBufferBytes?: number;
}

export interface BatchUdpCounters {
  received: number;
  sent: number;
  /** Answers the kernel would not take (a full send buffer, or an error for that peer). */
  sendFailed: number;
  /** Receive calls that returned datagrams. */
  batches: number;
}

export class BatchUdpSocket {
  private closed = false;
  private receiving = false;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly rx: { address: bigint; view: Buffer; free: () => void };
  private readonly tx: { address: bigint; view: Buffer; free: () => void };
  /** Where the data slots start in either ring, after the headers. */
  private readonly dataAt: number;
  /** Answers waiting in the send ring, and whether a flush is scheduled for them. */
  private queued = 0;
  private flushScheduled = false;
  private readonly clientTexts = new Map<string | number, string>();
  private readonly tally: BatchUdpCounters = { received: 0, sent: 0, sendFailed: 0, batches: 0 };

  private constructor(
    private readonly c: Libc,
    private readonly fd: number,
    readonly host: string,
    readonly port: number,
    private readonly batch: number,
    private readonly maxDatagram: number,
  ) {
    this.dataAt = batch * SLOT_HEADERS;
    this.rx = c.alloc(this.dataAt + batch * maxDatagram);
    this.tx = c.alloc(this.dataAt + batch * maxDatagram);
    for (const ring of [this.rx, this.tx]) {
      for (let i = 0; i < batch; i++) {
        const msg = i * MMSGHDR_LEN;
        const iov = batch * MMSGHDR_LEN + i * IOVEC_LEN;
        const name = batch * (MMSGHDR_LEN + IOVEC_LEN) + i * NAME_LEN;
        ring.view.fill(0, msg, msg + MMSGHDR_LEN);
        ring.view.writeBigUInt64LE(ring.address + BigInt(name), msg);
        ring.view.writeUInt32LE(NAME_LEN, msg + MSG_NAMELEN_AT);
        ring.view.writeBigUInt64LE(ring.address + BigInt(iov), msg + 16);
        ring.view.writeBigUInt64LE(1n, msg + 24);
        ring.view.writeBigUInt64LE(ring.address + BigInt(this.dataAt + i * maxDatagram), iov);
        ring.view.writeBigUInt64LE(BigInt(maxDatagram), iov + 8);
      }
    }
  }

  /**
   * Binds `host` (an IPv4 or IPv6 literal) and `port` (0: a free one). Rejects with a DnsError
   * whose `code` is the errno name ("EADDRINUSE", …) when the system refuses.
   */
  static async bind(host: string, port: number, o: BatchUdpOptions = {}): Promise<BatchUdpSocket> {
    if (!batchedUdpSupported())
      throw new DnsError(`batched UDP needs 64-bit Linux, not ${process.platform}/${process.arch}`);
    const addr = sockaddrOf(host, port);
    if (!addr) throw new DnsError(`batched UDP binds an address literal, not "${host}"`);
    const c = await loadLibc();
    const fd = c.socket(addr.readUInt16LE(0), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw errnoError(`socket()`, c.errno());
    const fail = (what: string) => {
      const e = errnoError(what, c.errno());
      c.close(fd);
      return e;
    };
    const size = Buffer.alloc(4);
    size.writeInt32LE(o.recvBufferBytes ?? 1 << 20);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, size, 4);
    if (c.bind(fd, addr, addr.length) !== 0) throw fail(`bind ${host}:${port}`);
    const bound = Buffer.alloc(NAME_LEN);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(NAME_LEN);
    if (c.getsockname(fd, bound, len) !== 0) throw fail("getsockname()");
    return new BatchUdpSocket(c, fd, host, bound.readUInt16BE(2), o.batch ?? 64, o.maxDatagram ?? 4096);
  }

  counters(): BatchUdpCounters {
    return { ...this.tally };
  }

  /**
   * Starts the receive loop: `onBatch` gets each batch (an exception in it is passed to
   * `onError`, and the loop goes on); `onError` also gets a receive call's failure, which ends it.
   */
  start(onBatch: (batch: DatagramBatch) => void, onError: (error: Error) => void): void {
    if (this.receiving || this.closed) return;
    this.receiving = true;
    const { view, address } = this.rx;
    const batch = this.batchView();
    this.loopDone = new Promise<void>((resolve) => {
      const next = () => {
        if (this.closed) return resolve();
        for (let i = 0; i < this.batch; i++) {
          view.writeUInt32LE(NAME_LEN, i * MMSGHDR_LEN + MSG_NAMELEN_AT);
          view.writeInt32LE(0, i * MMSGHDR_LEN + MSG_FLAGS_AT);
        }
        this.c.recvmmsg.async(this.fd, address, this.batch, MSG_WAITFORONE, null, (err, n) => {
          if (this.closed) return resolve();
          if (err || n < 0) {
            const code = err ? 0 : this.c.errno();
            if (code === EINTR) return next();
            // Out of kernel memory for a moment: try again shortly rather than stop serving.
            if (TRANSIENT.has(code)) {
              setTimeout(next, 10);
              return;
            }
            resolve();
            onError(err instanceof Error ? err : errnoError("recvmmsg()", code));
            return;
          }
          this.tally.batches++;
          this.tally.received += n;
          batch.count = n;
          try {
            onBatch(batch);
          } catch (error) {
            onError(error as Error);
          } finally {
            this.flush();
            next();
          }
        });
      };
      next();
    });
  }

  /** Answers `to` (from `DatagramBatch.sender`) with the next flush. */
  sendTo(data: Buffer, to: Buffer): void {
    if (this.closed) return;
    this.queue(data, to, 0, to.length);
    if (!this.flushScheduled && this.queued > 0) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.flush();
      });
    }
  }

  /** Stops receiving and closes the socket; answers still queued are sent first. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    // Wakes the receive call blocked on the worker (it returns; the loop sees `closed`).
    this.c.shutdown(this.fd, SHUT_RDWR);
    if (this.receiving) await this.loopDone;
    this.c.close(this.fd);
    this.rx.free();
    this.tx.free();
  }

  private batchView(): DatagramBatch & { count: number } {
    const { view } = this.rx;
    const nameAt = (i: number) => this.batch * (MMSGHDR_LEN + IOVEC_LEN) + i * NAME_LEN;
    return {
      count: 0,
      data: (i) => {
        const at = this.dataAt + i * this.maxDatagram;
        const length = Math.min(view.readUInt32LE(i * MMSGHDR_LEN + MMSG_LEN_AT), this.maxDatagram);
        return view.subarray(at, at + length);
      },
      truncated: (i) => (view.readInt32LE(i * MMSGHDR_LEN + MSG_FLAGS_AT) & MSG_TRUNC) !== 0,
      client: (i) => this.clientText(view, nameAt(i), view.readUInt32LE(i * MMSGHDR_LEN + MSG_NAMELEN_AT)),
      sender: (i) => {
        const at = nameAt(i);
        return Buffer.from(view.subarray(at, at + view.readUInt32LE(i * MMSGHDR_LEN + MSG_NAMELEN_AT)));
      },
      reply: (i, data) => {
        const at = nameAt(i);
        this.queue(data, view, at, at + view.readUInt32LE(i * MMSGHDR_LEN + MSG_NAMELEN_AT));
      },
    };
  }

  private clientText(view: Buffer, at: number, nameLen: number): string {
    // IPv4: address and port make one exact number; IPv6: the bytes that tell senders apart.
    const key =
      nameLen === 16
        ? view.readUInt32BE(at + 4) * 65536 + view.readUInt16BE(at + 2)
        : view.toString("latin1", at + 2, at + 24);
    let text = this.clientTexts.get(key);
    if (text === undefined) {
      text = sockaddrText(view, at);
      if (this.clientTexts.size >= MAX_CLIENT_TEXTS) this.clientTexts.clear();
      this.clientTexts.set(key, text);
    }
    return text;
  }

  /** Copies an answer and its destination into the send ring (sent at once when it is full). */
  private queue(data: Buffer, name: Buffer, from: number, to: number): void {
    if (data.length > this.maxDatagram) {
      // Larger than a slot: on its own, straight from the buffer.
      const addr = name.subarray(from, to);
      const n = this.c.sendto(this.fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL, addr, addr.length);
      if (n < 0) this.tally.sendFailed++;
      else this.tally.sent++;
      return;
    }
    if (this.queued === this.batch) this.flush();
    const i = this.queued++;
    const { view } = this.tx;
    name.copy(view, this.batch * (MMSGHDR_LEN + IOVEC_LEN) + i * NAME_LEN, from, to);
    view.writeUInt32LE(to - from, i * MMSGHDR_LEN + MSG_NAMELEN_AT);
    data.copy(view, this.dataAt + i * this.maxDatagram);
    view.writeBigUInt64LE(BigInt(data.length), this.batch * MMSGHDR_LEN + i * IOVEC_LEN + 8);
  }

  /** Sends what the ring holds, in one call unless one answer fails (it is skipped, counted). */
  private flush(): void {
    let at = 0;
    while (at < this.queued) {
      const n = this.c.sendmmsg(
        this.fd,
        this.tx.address + BigInt(at * MMSGHDR_LEN),
        this.queued - at,
        MSG_DONTWAIT | MSG_NOSIGNAL,
      );
      if (n > 0) {
        this.tally.sent += n;
        at += n;
      } else {
        this.tally.sendFailed++;
        at++;
      }
    }
    this.queued = 0;
  }
}

function errnoError(what: string, code: number): DnsSocketError {
  const name = Object.entries(osConstants.errno).find(([, value]) => value === code)?.[0] ?? `errno ${code}`;
  return new DnsSocketError(`${what}: ${name}`, name);
}
