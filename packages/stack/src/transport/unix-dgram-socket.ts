/**
 * A unix datagram socket through koffi (Node has none): bind, sendto without blocking, and a
 * receive loop of blocking recvmmsg() calls on a libuv worker thread, each returning up to
 * `batch` datagrams with their senders' addresses. No native addon to compile.
 */
import { TransportError } from "../errors.js";
import {
  AF_UNIX,
  EINTR,
  errnoName,
  type Libc,
  loadLibc,
  MSG_DONTWAIT,
  MSG_NOSIGNAL,
  MSG_TRUNC,
  MSG_WAITFORONE,
  SO_RCVBUF,
  SO_SNDBUF,
  SO_SNDTIMEO,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOL_SOCKET,
} from "./libc.js";

const SHUT_RDWR = 2;
/** Longest wait of a blocking send for room at a peer (SO_SNDTIMEO), in seconds. */
const SEND_TIMEOUT_S = 1;
/**
 * Blocking sends on libuv workers at once, per socket: peers that stop reading must not take
 * the whole thread pool (DNS lookups and file I/O of the process share it). Others wait their turn.
 */
const DEFAULT_MAX_BLOCKING_SENDS = 2;

// x86-64 / aarch64 Linux layouts: struct sockaddr_un, iovec, and mmsghdr (a 56-byte msghdr,
// then msg_len, padded to 64).
const SUN_PATH_MAX = 108;
const SOCKADDR_UN_LEN = 2 + SUN_PATH_MAX;
const IOVEC_LEN = 16;
const MMSGHDR_LEN = 64;
const MSG_NAMELEN_AT = 8;
const MSG_FLAGS_AT = 48;
const MMSG_LEN_AT = 56;

/**
 * Gets each received datagram: its bytes, lent (valid only during the call: the next datagram
 * lands in the same memory, so copy what you keep), the sender's path ("" when the sender is
 * unbound), and whether it was longer than the receive buffer and was cut.
 */
export type DatagramHandler = (data: Buffer, from: string, truncated: boolean) => void;

/** struct sockaddr_un for `path`, and its length as bind/sendto take it. */
export function sockaddrUn(path: string): Buffer {
  const bytes = Buffer.from(path);
  if (bytes.length === 0 || bytes.length >= SUN_PATH_MAX) {
    throw new TransportError(`unix socket path must be 1..${SUN_PATH_MAX - 1} bytes: ${path}`);
  }
  const addr = Buffer.alloc(2 + bytes.length + 1);
  addr.writeUInt16LE(AF_UNIX, 0);
  bytes.copy(addr, 2);
  return addr;
}

export interface UnixDgramSocketOptions {
  /** Datagrams taken per receive call (default 64). */
  batch?: number;
  /** Receive buffer per datagram (default 65536: larger datagrams are reported truncated). */
  maxDatagram?: number;
  recvBufferBytes?: number;
  sendBufferBytes?: number;
  /** Blocking batch sends on worker threads at once, over all peers (default 2; libuv has 4 threads unless UV_THREADPOOL_SIZE says otherwise, and the receive loop holds one). */
  maxBlockingSends?: number;
}

export class UnixDgramSocket {
  private closed = false;
  private receiving = false;
  private readonly addrCache = new Map<string, Buffer>();
  private ring: { base: bigint; view: Buffer } | undefined;
  private landing: Buffer | undefined;
  private lastSender: { bytes: Buffer; path: string } | undefined;
  private loopDone: Promise<void> = Promise.resolve();
  /** Batch sends running on a worker (at most maxBlockingSends): each still names `fd`. */
  private sendsInFlight = 0;
  /** Senders waiting for one of the maxBlockingSends slots. */
  private readonly slotWaiters: (() => void)[] = [];
  /** close() is done with the receive loop: the fd goes once no send names it. */
  private fdReleasable = false;
  private fdClosed = false;

  private constructor(
    private readonly c: Libc,
    readonly fd: number,
    readonly path: string,
    private readonly batch: number,
    private readonly maxDatagram: number,
    private readonly maxBlockingSends: number,
  ) {}

  /** Creates a socket bound at `path` (which must not exist). */
  static async bind(path: string, options: UnixDgramSocketOptions = {}): Promise<UnixDgramSocket> {
    // The struct layouts above are those of 64-bit Linux.
    if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
      throw new TransportError(
        `unix datagram sockets need 64-bit Linux (x64 or arm64); this is ${process.platform}/${process.arch}`,
      );
    }
    const maxBlockingSends = options.maxBlockingSends ?? DEFAULT_MAX_BLOCKING_SENDS;
    if (!Number.isInteger(maxBlockingSends) || maxBlockingSends < 1) {
      throw new TransportError(`maxBlockingSends must be a whole number ≥ 1, got ${maxBlockingSends}`);
    }
    const c = await loadLibc();
    const addr = sockaddrUn(path);
    const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new TransportError(`socket(AF_UNIX, SOCK_DGRAM): ${errnoName(c.errno())}`);
    if (c.bind(fd, addr, addr.length) !== 0) {
      const code = c.errno();
      c.close(fd);
      throw new TransportError(`cannot bind ${path}: ${errnoName(code)}`);
    }
    const setInt = (name: number, value: number) => {
      const v = Buffer.alloc(4);
      v.writeInt32LE(value);
      c.setsockopt(fd, SOL_SOCKET, name, v, 4);
    };
    setInt(SO_RCVBUF, options.recvBufferBytes ?? 4 * 1024 * 1024);
    setInt(SO_SNDBUF, options.sendBufferBytes ?? 1024 * 1024);
    // A blocking send waits this long at most for room at a peer that stopped reading.
    const timeout = Buffer.alloc(16);
    timeout.writeBigInt64LE(BigInt(SEND_TIMEOUT_S), 0);
    c.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, timeout, 16);
    return new UnixDgramSocket(
      c,
      fd,
      path,
      options.batch ?? 64,
      options.maxDatagram ?? 65_536,
      maxBlockingSends,
    );
  }

  /** Batch sends holding a worker thread now (at most maxBlockingSends). */
  get blockingSendsNow(): number {
    return this.sendsInFlight;
  }

  private address(path: string): Buffer {
    let addr = this.addrCache.get(path);
    if (!addr) {
      addr = sockaddrUn(path);
      if (this.addrCache.size > 1024) this.addrCache.clear();
      this.addrCache.set(path, addr);
    }
    return addr;
  }

  /**
   * A sender of batches to one peer that waits, on a worker thread, for room in the peer's
   * receive queue — which Linux keeps short (net.unix.max_dgram_qlen, 10 by default), so a
   * burst does not fit and polling cannot tell when one peer's queue has room again.
   */
  batchSender(path: string, capacityBytes = 1024 * 1024): BatchSender {
    const calls: SendCalls = {
      begin: async () => {
        while (this.sendsInFlight >= this.maxBlockingSends && !this.closed) {
          await new Promise<void>((wake) => this.slotWaiters.push(wake));
        }
        if (this.closed) return false;
        this.sendsInFlight++;
        return true;
      },
      end: () => {
        this.sendsInFlight--;
        this.slotWaiters.shift()?.();
        this.releaseFd();
      },
    };
    return new BatchSender(
      this.c,
      this.fd,
      calls,
      this.address(path),
      Math.min(this.batch, 64),
      capacityBytes,
    );
  }

  /**
   * Sends one datagram without blocking. Returns undefined when sent, else the errno name
   * ("EAGAIN" when the receiver's queue is full, "ECONNREFUSED"/"ENOENT" when it is gone).
   */
  sendTo(data: Buffer, path: string): string | undefined {
    if (this.closed) return "EBADF";
    const addr = this.address(path);
    const n = this.c.sendto(this.fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL, addr, addr.length);
    return n < 0 ? errnoName(this.c.errno()) : undefined;
  }

  /** Starts the receive loop; `onDatagram` gets each datagram, `onError` a fatal receive error. */
  startReceiving(onDatagram: DatagramHandler, onError: (error: Error) => void): void {
    if (this.receiving || this.closed) return;
    this.receiving = true;
    const slot = MMSGHDR_LEN + IOVEC_LEN + SOCKADDR_UN_LEN;
    const headerBytes = this.batch * slot;
    const total = headerBytes + this.batch * this.maxDatagram;
    const base = this.c.alloc(total);
    const view = Buffer.from(this.c.view(base, total));
    this.ring = { base, view };
    // Fixed parts of every header: where the name, the iovec and the data buffer live.
    for (let i = 0; i < this.batch; i++) {
      const msg = i * MMSGHDR_LEN;
      const iov = this.batch * MMSGHDR_LEN + i * IOVEC_LEN;
      const name = this.batch * (MMSGHDR_LEN + IOVEC_LEN) + i * SOCKADDR_UN_LEN;
      const data = headerBytes + i * this.maxDatagram;
      view.writeBigUInt64LE(base + BigInt(name), msg);
      view.writeBigUInt64LE(base + BigInt(iov), msg + 16);
      view.writeBigUInt64LE(1n, msg + 24);
      view.writeBigUInt64LE(0n, msg + 32);
      view.writeBigUInt64LE(0n, msg + 40);
      view.writeBigUInt64LE(base + BigInt(data), iov);
      view.writeBigUInt64LE(BigInt(this.maxDatagram), iov + 8);
    }
    this.loopDone = new Promise<void>((resolve) => {
      const next = () => {
        if (this.closed) return resolve();
        for (let i = 0; i < this.batch; i++) {
          view.writeUInt32LE(SOCKADDR_UN_LEN, i * MMSGHDR_LEN + MSG_NAMELEN_AT);
          view.writeInt32LE(0, i * MMSGHDR_LEN + MSG_FLAGS_AT);
        }
        this.c.recvmmsg.async(this.fd, base, this.batch, MSG_WAITFORONE, null, (err: unknown, n: number) => {
          if (this.closed) return resolve();
          if (err || n < 0) {
            const code = err ? undefined : this.c.errno();
            if (code === EINTR) return next();
            resolve();
            onError(new TransportError(`recvmmsg on ${this.path}: ${err ? String(err) : errnoName(code!)}`));
            return;
          }
          // The loop goes on even if a receiver throws: close() waits for it to end.
          try {
            this.deliver(view, n, headerBytes, onDatagram);
          } finally {
            next();
          }
        });
      };
      next();
    });
  }

  /**
   * Hands out a batch's datagrams one by one, each copied into one landing buffer of JavaScript
   * memory: the ring is native memory that close() frees, so no view of it may ever escape, and
   * a buffer per datagram would be garbage for V8 to collect.
   */
  private deliver(view: Buffer, n: number, headerBytes: number, onDatagram: DatagramHandler): void {
    this.landing ??= Buffer.allocUnsafeSlow(this.maxDatagram);
    const landing = this.landing;
    for (let i = 0; i < n; i++) {
      if (this.closed) return;
      const msg = i * MMSGHDR_LEN;
      const length = view.readUInt32LE(msg + MMSG_LEN_AT);
      const flags = view.readInt32LE(msg + MSG_FLAGS_AT);
      const nameLen = view.readUInt32LE(msg + MSG_NAMELEN_AT);
      const nameAt = this.batch * (MMSGHDR_LEN + IOVEC_LEN) + i * SOCKADDR_UN_LEN;
      const from =
        nameLen > 2
          ? this.senderPath(view.subarray(nameAt + 2, nameAt + Math.min(nameLen, SOCKADDR_UN_LEN)))
          : "";
      const dataAt = headerBytes + i * this.maxDatagram;
      const kept = Math.min(length, this.maxDatagram);
      view.copy(landing, 0, dataAt, dataAt + kept);
      onDatagram(landing.subarray(0, kept), from, (flags & MSG_TRUNC) !== 0);
    }
  }

  /** The path in a sender's sun_path bytes; the last one is kept, since a VM sends from one path. */
  private senderPath(raw: Buffer): string {
    const nul = raw.indexOf(0);
    const name = nul < 0 ? raw : raw.subarray(0, nul);
    if (this.lastSender && name.equals(this.lastSender.bytes)) return this.lastSender.path;
    const path = name.toString("utf8");
    this.lastSender = { bytes: Buffer.from(name), path };
    return path;
  }

  /** Stops receiving and closes the socket (the blocked receive is woken by shutdown). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const wake of this.slotWaiters.splice(0)) wake();
    this.c.shutdown(this.fd, SHUT_RDWR);
    if (this.receiving) await this.loopDone;
    if (this.ring) this.c.free(this.ring.base);
    this.ring = undefined;
    // A send queued or blocked on a worker (up to SO_SNDTIMEO) still uses the fd number: closing
    // it now could let that send reach whatever descriptor reuses the number. The last one closes it.
    this.fdReleasable = true;
    this.releaseFd();
  }

  private releaseFd(): void {
    if (!this.fdReleasable || this.fdClosed || this.sendsInFlight > 0) return;
    this.fdClosed = true;
    this.c.close(this.fd);
  }
}

/**
 * How a BatchSender gets one of its socket's worker slots (waiting for one if need be; false:
 * the socket is closed) and gives it back.
 */
interface SendCalls {
  begin(): Promise<boolean>;
  end(): void;
}

/**
 * Blocking sendmmsg() of copied frames on a libuv worker: one batch in flight at a time. The
 * frames are copied into native memory that stays put while the worker reads it.
 */
export class BatchSender {
  private readonly base: bigint;
  private readonly view: Buffer;
  private readonly dataAt: number;
  private busy = false;
  private freed = false;

  constructor(
    private readonly c: Libc,
    private readonly fd: number,
    private readonly calls: SendCalls,
    addr: Buffer,
    private readonly maxBatch: number,
    private readonly capacity: number,
  ) {
    const addrAt = maxBatch * (MMSGHDR_LEN + IOVEC_LEN);
    this.dataAt = addrAt + SOCKADDR_UN_LEN;
    this.base = c.alloc(this.dataAt + capacity);
    this.view = Buffer.from(c.view(this.base, this.dataAt + capacity));
    addr.copy(this.view, addrAt);
    for (let i = 0; i < maxBatch; i++) {
      const msg = i * MMSGHDR_LEN;
      this.view.fill(0, msg, msg + MMSGHDR_LEN);
      this.view.writeBigUInt64LE(this.base + BigInt(addrAt), msg);
      this.view.writeUInt32LE(addr.length, msg + MSG_NAMELEN_AT);
      this.view.writeBigUInt64LE(this.base + BigInt(maxBatch * MMSGHDR_LEN + i * IOVEC_LEN), msg + 16);
      this.view.writeBigUInt64LE(1n, msg + 24);
    }
  }

  /** How many of `frames` (from the front) one call takes. */
  fits(frames: readonly Buffer[]): number {
    let n = 0;
    let bytes = 0;
    while (n < frames.length && n < this.maxBatch && bytes + frames[n]!.length <= this.capacity) {
      bytes += frames[n]!.length;
      n++;
    }
    return n;
  }

  /**
   * Sends the first `fits(frames)` frames, waiting for room at the peer; resolves with how many
   * went out (fewer on an error or a peer that stayed full for SO_SNDTIMEO).
   */
  async send(frames: readonly Buffer[]): Promise<number> {
    if (this.busy || this.freed) return 0;
    const n = this.fits(frames);
    if (n === 0) return 0;
    this.busy = true;
    const slot = await this.calls.begin();
    if (!slot || this.freed) {
      if (slot) this.calls.end();
      this.busy = false;
      if (this.freed) this.release();
      return 0;
    }
    let at = this.dataAt;
    for (let i = 0; i < n; i++) {
      const f = frames[i]!;
      f.copy(this.view, at);
      const iov = this.maxBatch * MMSGHDR_LEN + i * IOVEC_LEN;
      this.view.writeBigUInt64LE(this.base + BigInt(at), iov);
      this.view.writeBigUInt64LE(BigInt(f.length), iov + 8);
      at += f.length;
    }
    return new Promise((resolve) => {
      this.c.sendmmsg.async(this.fd, this.base, n, MSG_NOSIGNAL, (err: unknown, sent: number) => {
        this.busy = false;
        this.calls.end();
        if (this.freed) this.release();
        resolve(err || sent < 0 ? 0 : sent);
      });
    });
  }

  /** Frees the native memory (at once, or when the call in flight returns). */
  free(): void {
    if (this.freed) return;
    this.freed = true;
    if (!this.busy) this.release();
  }

  private release(): void {
    this.c.free(this.base);
  }
}
