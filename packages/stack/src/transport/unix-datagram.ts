/**
 * Guest links over a unix datagram socket, one Ethernet frame per datagram: vfkit and krunkit
 * (`virtio-net,unixSocketPath=PATH`, what Lima, Podman machine and CRC use) and qemu
 * (`-netdev dgram,local.type=unix,...,remote.type=unix,remote.path=PATH`).
 *
 * desktopd binds PATH; every peer that sends from its own bound address becomes a link of its
 * own, and replies go to that address. A peer whose address stops accepting datagrams (its VMM
 * exited) loses its link; when it sends again (VM restarted) it gets a new one.
 */
import { chmodSync, existsSync, lstatSync, readFileSync, rmSync } from "node:fs";
import * as net from "node:net";
import { countDrop, type FrameReceiver, type FrameTransport, newTransportStats } from "@desktopd/core";
import { TransportError } from "../errors.js";
import { ETH_HEADER_LEN } from "../wire/ethernet.js";
import { payloadLength } from "../wire/payload.js";
import { type BatchSender, UnixDgramSocket } from "./unix-dgram-socket.js";

/** Old vfkit versions send this 4-byte datagram first, to make their address known. */
const VFKIT_HANDSHAKE = Buffer.from("VFKT");
/** Largest frame: MTU 65520 and an Ethernet header. */
const DEFAULT_MAX_FRAME = 65_534;
/** Send errors that mean the peer's socket is gone (its VMM exited). */
const PEER_GONE = new Set(["ENOENT", "ECONNREFUSED", "ENOTCONN", "EPERM"]);
/** Send errors that mean the peer's receive queue is full for now. */
const FULL = new Set(["EAGAIN", "EWOULDBLOCK", "ENOBUFS"]);
const DEFAULT_MAX_BACKLOG = 512;
const DEFAULT_MAX_PEERS = 64;

export interface UnixDatagramOptions {
  /** Frames longer than this are dropped as "oversize" (default 65534: MTU 65520 + Ethernet). */
  maxFrame?: number;
  /** Frames held per peer while its receive queue is full, beyond which they are dropped (default 512). */
  maxBacklog?: number;
  /**
   * Links at once (default 64): every new sender address is a link, so a flood of addresses must
   * not grow the table without end; beyond it, datagrams from new addresses are dropped.
   */
  maxPeers?: number;
  /** Remove a stale socket file left by an earlier run at `path` (default true). */
  replaceStale?: boolean;
}

export interface UnixDatagramListener {
  readonly path: string;
  /** Datagrams that belong to no link: from an unbound (nameless) sender, or after close. */
  readonly stats: { drops: Record<string, number> };
  close(): Promise<void>;
}

/**
 * Linux lets a unix datagram socket queue only `net.unix.max_dgram_qlen` datagrams (10 unless
 * systemd or an admin raised it, to 512 on systemd hosts); beyond that the VMM waits for room,
 * and a VM bursting faster than one batch of ours runs at about half speed (measured under qemu).
 * A socket takes the value in force when it is created: raising it needs new sockets.
 */
export const RECOMMENDED_DGRAM_QLEN = 512;

/** `net.unix.max_dgram_qlen` of this network namespace, or undefined where it cannot be read. */
export function unixDatagramQueueLimit(path = "/proc/sys/net/unix/max_dgram_qlen"): number | undefined {
  try {
    const text = readFileSync(path, "utf8").trim();
    return /^\d+$/.test(text) ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

/** Binds `path` and calls `onLink` for every peer that starts sending frames. */
export async function listenUnixDatagram(
  path: string,
  onLink: (link: FrameTransport) => void,
  options: UnixDatagramOptions = {},
): Promise<UnixDatagramListener> {
  if (existsSync(path)) {
    if (options.replaceStale === false) throw new TransportError(`${path} already exists`);
    // Only a socket is ours to replace: a mistyped path must not delete someone's file.
    if (!lstatSync(path).isSocket()) throw new TransportError(`${path} exists and is not a socket`);
    if (await isBound(path)) throw new TransportError(`${path} is in use by another process`);
    rmSync(path, { force: true });
  }
  const socket = await UnixDgramSocket.bind(path, {
    maxDatagram: (options.maxFrame ?? DEFAULT_MAX_FRAME) + 1,
  });
  let inode: number;
  try {
    // Whoever may send here may put frames on the guests' network: the owner only, whatever the umask.
    chmodSync(path, 0o600);
    inode = lstatSync(path).ino;
  } catch (error) {
    await socket.close();
    throw new TransportError(`cannot secure ${path}: ${(error as Error).message}`, { cause: error });
  }
  return new DatagramListener(path, inode, socket, onLink, options);
}

/**
 * Whether a process is bound to the socket at `path`: a stream connect to a live datagram socket
 * fails with EPROTOTYPE (or succeeds, on a stream socket), to a stale one with ECONNREFUSED.
 */
function isBound(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", (error: NodeJS.ErrnoException) =>
      resolve(error.code !== "ECONNREFUSED" && error.code !== "ENOENT"),
    );
  });
}

class DatagramListener implements UnixDatagramListener {
  readonly stats = { drops: {} as Record<string, number> };
  private readonly peers = new Map<string, PeerLink>();
  private scratchBuffer: Buffer | undefined;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly inode: number,
    readonly socket: UnixDgramSocket,
    private readonly onLink: (link: FrameTransport) => void,
    readonly options: UnixDatagramOptions,
  ) {
    socket.startReceiving(
      (data, from, truncated) => this.onDatagram(data, from, truncated),
      (error) => {
        for (const peer of [...this.peers.values()]) peer.shutdown(error);
      },
    );
  }

  /** `datagram` is lent: memory the next one lands in. */
  private onDatagram(datagram: Buffer, from: string, truncated: boolean): void {
    if (this.closed) return;
    if (!from) {
      countDrop(this.stats, "unaddressable-peer");
      return;
    }
    let peer = this.peers.get(from);
    if (!peer) {
      if (this.peers.size >= (this.options.maxPeers ?? DEFAULT_MAX_PEERS)) {
        countDrop(this.stats, "too-many-peers");
        return;
      }
      peer = new PeerLink(this, from);
      this.peers.set(from, peer);
      this.onLink(peer);
    }
    if (datagram.length === VFKIT_HANDSHAKE.length && datagram.equals(VFKIT_HANDSHAKE)) return;
    peer.receive(datagram, truncated);
  }

  /** Memory for one frame, free again once the synchronous send that uses it returns. */
  scratch(length: number): Buffer {
    this.scratchBuffer ??= Buffer.allocUnsafeSlow((this.options.maxFrame ?? DEFAULT_MAX_FRAME) + 1);
    return this.scratchBuffer.subarray(0, length);
  }

  forget(peer: PeerLink): void {
    if (this.peers.get(peer.address) === peer) this.peers.delete(peer.address);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const peer of [...this.peers.values()]) peer.shutdown();
    // Only our own socket file: another process may have replaced it (a forced restart).
    try {
      if (lstatSync(this.path).ino === this.inode) rmSync(this.path, { force: true });
    } catch {
      // Already gone.
    }
    await this.socket.close();
  }
}

class PeerLink implements FrameTransport {
  readonly name: string;
  readonly stats = newTransportStats();
  private receiver: FrameReceiver | undefined;
  private closed = false;
  private readonly maxFrame: number;
  private readonly maxBacklog: number;
  private backlog: Buffer[] = [];
  private flushing = false;
  private sender: BatchSender | undefined;

  constructor(
    private readonly listener: DatagramListener,
    readonly address: string,
  ) {
    this.name = `unixgram:${address}`;
    this.maxFrame = listener.options.maxFrame ?? DEFAULT_MAX_FRAME;
    this.maxBacklog = listener.options.maxBacklog ?? DEFAULT_MAX_BACKLOG;
  }

  start(receiver: FrameReceiver): void {
    if (this.receiver) throw new Error(`${this.name}: start() called twice`);
    this.receiver = receiver;
  }

  receive(datagram: Buffer, truncated: boolean): void {
    if (datagram.length < ETH_HEADER_LEN) {
      countDrop(this.stats, "truncated");
      return;
    }
    if (truncated || datagram.length > this.maxFrame) {
      countDrop(this.stats, "oversize");
      return;
    }
    this.stats.framesIn++;
    this.stats.bytesIn += datagram.length;
    const receiver = this.receiver;
    if (!receiver) return;
    // Lent on to a receiver that copies what it keeps; a copy of its own for any other.
    if (receiver.acceptsLent) receiver.onFrame(datagram, { lent: true });
    else receiver.onFrame(Buffer.from(datagram));
  }

  send(frame: Buffer): void {
    if (!this.refuses(frame.length)) this.transmit(frame, true);
  }

  /**
   * The parts joined in the listener's scratch buffer, which sendto copies at once: a buffer of
   * its own only for a frame that has to wait in the backlog.
   */
  sendv(parts: readonly Buffer[]): void {
    const length = payloadLength(parts);
    if (this.refuses(length)) return;
    const frame = this.listener.scratch(length);
    let at = 0;
    for (const part of parts) at += part.copy(frame, at);
    this.transmit(frame, false);
  }

  /** Counts a frame of `length` bytes that cannot go at all, and says so. */
  private refuses(length: number): boolean {
    if (this.closed) countDrop(this.stats, "link-down");
    // Also keeps every backlogged frame within what one batch send can carry.
    else if (length > this.maxFrame) countDrop(this.stats, "oversize");
    else return false;
    return true;
  }

  /** `owned`: the frame may wait in the backlog as it is; otherwise a copy does. */
  private transmit(frame: Buffer, owned: boolean): void {
    if (this.backlog.length > 0) {
      this.enqueue(owned ? frame : Buffer.from(frame));
      return;
    }
    const error = this.listener.socket.sendTo(frame, this.address);
    if (error === undefined) this.sent(frame);
    else if (FULL.has(error)) this.enqueue(owned ? frame : Buffer.from(frame));
    else this.failed(error);
  }

  private sent(frame: Buffer): void {
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
  }

  /**
   * The peer's receive queue is full (a burst: Linux queues few datagrams per socket): hold a
   * bounded backlog, as a NIC's ring would, and send it from a worker thread that waits for
   * room; beyond the backlog, drop.
   */
  private enqueue(frame: Buffer): void {
    if (this.backlog.length >= this.maxBacklog) {
      countDrop(this.stats, "queue-full");
      return;
    }
    this.backlog.push(frame);
    if (!this.flushing) void this.flush();
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    this.sender ??= this.listener.socket.batchSender(this.address);
    while (this.backlog.length > 0 && !this.closed) {
      const batch = this.backlog.slice(0, this.sender.fits(this.backlog));
      let done = await this.sender.send(batch);
      for (let i = 0; i < done; i++) this.sent(batch[i]!);
      if (done < batch.length && !this.closed) {
        // Why the batch stopped: ask without blocking, and so learn the errno.
        const error = this.listener.socket.sendTo(batch[done]!, this.address);
        if (error === undefined) this.sent(batch[done]!);
        else if (FULL.has(error)) {
          // Full for a whole SO_SNDTIMEO: the peer is not reading; this batch is lost.
          for (let i = done; i < batch.length; i++) countDrop(this.stats, "queue-full");
          done = batch.length - 1;
        } else {
          this.failed(error);
          break;
        }
        done++;
      }
      this.backlog.splice(0, done);
    }
    this.flushing = false;
  }

  private failed(error: string): void {
    if (!PEER_GONE.has(error)) {
      countDrop(this.stats, `send-${error}`);
      return;
    }
    countDrop(this.stats, "peer-gone");
    this.shutdown(new Error(`${this.address}: ${error}`));
  }

  close(): Promise<void> {
    this.shutdown();
    return Promise.resolve();
  }

  shutdown(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.backlog = [];
    this.sender?.free();
    this.listener.forget(this);
    this.receiver?.onClose?.(error);
  }
}
