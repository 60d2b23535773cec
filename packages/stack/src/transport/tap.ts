/**
 * A Linux TAP device as a FrameTransport: the guest's NIC is the TAP interface (moved into the
 * guest's network namespace), and every frame the guest sends is one read() on our fd.
 */

import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import {
  countDrop,
  type FrameMeta,
  type FrameReceiver,
  type FrameTransport,
  MAX_MTU,
  MIN_MTU,
  newTransportStats,
  type OffloadCapability,
} from "@desktopd/core";
import { ConfigError, TransportError } from "../errors.js";
import { macToString, parseMac } from "../wire/address.js";
import { ETH_HEADER_LEN } from "../wire/ethernet.js";
import { payloadLength } from "../wire/payload.js";
import { TCP_HEADER_LEN } from "../wire/tcp.js";
import { ipOrThrow, runIp } from "./ip-command.js";
import {
  createTapDevice,
  IFF_NO_PI,
  IFF_TAP,
  IFF_VNET_HDR,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
} from "./tun-device.js";

export interface TapOptions {
  /** Network namespace (as named by `ip netns`) to move the device into; default: stay in ours. */
  netns?: string;
  /** Interface name inside the namespace (default "eth0"). */
  ifname?: string;
  /** Link MTU, 68..65520 (default 1500). */
  mtu?: number;
  /** MAC address of the guest's NIC (default: a random locally administered unicast address). */
  mac?: string;
  /** Bring the interface up (default true). */
  up?: boolean;
  /**
   * Exchange frames with a virtio-net header (IFF_VNET_HDR) and let the guest use checksum
   * offload and TCP segmentation offload (IPv4 and IPv6): it then sends TCP super-segments of up to
   * 64 KiB with partial checksums, and accepts the same from the stack (default false).
   */
  offload?: boolean;
}

export interface TapTransport extends FrameTransport {
  readonly ifname: string;
  readonly netns: string | undefined;
  /** The MAC of the guest-side interface, "aa:bb:cc:dd:ee:ff". */
  readonly guestMac: string;
  readonly mtu: number;
}

const VLAN_TAG_LEN = 4;
const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;
/** Linux's EBADFD, which os.constants.errno does not list. */
const EBADFD = 77;

// struct virtio_net_hdr (<linux/virtio_net.h>), little-endian on the TAP of a little-endian host,
// 12 bytes with the trailing num_buffers (always 0 here).
const VNET_HDR_LEN = 12;
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const VIRTIO_NET_HDR_GSO_NONE = 0;
const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
const ETHERTYPE_IPV6 = 0x86dd;
/** Largest frame with offload: a 64 KiB IPv4 packet, its Ethernet header and a VLAN tag. */
const MAX_OFFLOAD_FRAME = 0xffff + ETH_HEADER_LEN + 4;
/** One read must hold the largest super-frame the guest can hand us, header included. */
const OFFLOAD_READ_BUFFER = 128 * 1024;
/** Buffers in one writev that libuv writes with a single system call (its IOV_MAX batching). */
const MAX_WRITE_PARTS = 1024;

/** Creates a TAP device, moves it into `netns`, and configures name, MTU, MAC and state. */
export async function openTap(options: TapOptions = {}): Promise<TapTransport> {
  const ifname = options.ifname ?? "eth0";
  const mtu = options.mtu ?? 1500;
  const { netns } = options;
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
    throw new ConfigError(`tap: mtu must be an integer in ${MIN_MTU}..${MAX_MTU}, got ${mtu}`);
  }
  if (ifname.length > 15 || !NAME_PATTERN.test(ifname) || ifname === "." || ifname === "..") {
    throw new ConfigError(`tap: invalid interface name "${ifname}"`);
  }
  if (netns !== undefined && (!NAME_PATTERN.test(netns) || netns === "." || netns === "..")) {
    throw new ConfigError(`tap: invalid network namespace name "${netns}"`);
  }
  const mac = options.mac === undefined ? randomLocalMac() : parseMac(options.mac);
  if (!mac || (mac[0]! & 1) === 1 || mac.every((b) => b === 0)) {
    throw new ConfigError(`tap: mac must be a unicast address, got "${options.mac}"`);
  }
  const guestMac = macToString(mac);

  // Checked first so that the common mistakes get a clear message and no device is created.
  const probe = await runIp(netns, ["link", "show", "dev", ifname]);
  if (probe.ok) {
    throw new TransportError(`tap: interface "${ifname}" already exists${netns ? ` in netns ${netns}` : ""}`);
  }
  if (/Cannot open network namespace|No such file/i.test(probe.stderr) && netns !== undefined) {
    throw new TransportError(`tap: network namespace "${netns}" does not exist (${probe.stderr})`);
  }

  // A unique temporary name in our namespace, so two opens never collide before the move.
  const kernelName = `dtap${randomBytes(5).toString("hex")}`;
  const offload = options.offload === true;
  const fd = offload
    ? await createTapDevice(kernelName, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, {
        headerSize: VNET_HDR_LEN,
        offloads: TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
      })
    : await createTapDevice(kernelName, IFF_TAP | IFF_NO_PI);
  try {
    if (netns !== undefined) {
      await ipOrThrow(
        undefined,
        ["link", "set", "dev", kernelName, "netns", netns],
        `tap: move into netns ${netns}`,
      );
    }
    const set = ["link", "set", "dev", kernelName, "name", ifname, "mtu", String(mtu), "address", guestMac];
    if (options.up !== false) set.push("up");
    await ipOrThrow(netns, set, `tap: configure ${ifname}`);
  } catch (error) {
    // Closing the only fd of a non-persistent TAP removes the device, wherever it is now.
    fs.closeSync(fd);
    throw error;
  }
  return new Tap(fd, ifname, netns, guestMac, mtu, offload);
}

function randomLocalMac(): Buffer {
  const mac = randomBytes(6);
  mac[0] = (mac[0]! & 0xfc) | 0x02; // locally administered, unicast
  return mac;
}

interface PipeHandle {
  open(fd: number): number;
}
type PipeWrap = { Pipe: new (type: number) => PipeHandle; constants: { SOCKET: number } };

/**
 * Wraps the fd in a libuv pipe handle so epoll drives reads on the main loop: no threadpool
 * round trip per frame (fs.read would take one). Node offers no public API that accepts a
 * character device; `pipe_wrap` is on process.binding's allow list and warns only under
 * --pending-deprecation.
 */
function socketForFd(
  fd: number,
  onread?: { buffer: Buffer; callback: (bytes: number, buffer: Buffer) => void },
): net.Socket {
  let pipeWrap: PipeWrap;
  try {
    pipeWrap = (process as unknown as { binding(name: string): unknown }).binding("pipe_wrap") as PipeWrap;
  } catch (error) {
    throw new TransportError("tap: this Node.js has no pipe_wrap binding to poll the TAP fd", {
      cause: error,
    });
  }
  const handle = new pipeWrap.Pipe(pipeWrap.constants.SOCKET);
  const status = handle.open(fd);
  if (status !== 0) throw new TransportError(`tap: cannot poll the TAP fd (libuv status ${status})`);
  // With `onread`, libuv reads into that one large buffer (the default 64 KiB can cut a super-frame).
  const options = onread
    ? { handle, readable: true, writable: false, onread }
    : { handle, readable: true, writable: false };
  return new net.Socket(options as net.SocketConstructorOpts);
}

class Tap implements TapTransport {
  readonly name: string;
  readonly stats = newTransportStats();
  /**
   * Bytes of `struct virtio_net_hdr` before each frame. 0 unless IFF_VNET_HDR (checksum offload,
   * TSO) is switched on; `vnetHeader` adds it on write and `fromWire` strips it on read.
   */
  private readonly vnetHeaderLength: number;
  readonly offload: OffloadCapability | undefined;
  private readonly maxFrame: number;
  private readonly vnetBuffer: Buffer;
  private socket: net.Socket | undefined;
  private started = false;
  /** The fd is closed: by close(), or because the device disappeared. */
  private gone = false;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly fd: number,
    readonly ifname: string,
    readonly netns: string | undefined,
    readonly guestMac: string,
    readonly mtu: number,
    offload = false,
  ) {
    this.name = `tap:${netns ? `${netns}/` : ""}${ifname}`;
    this.maxFrame = mtu + ETH_HEADER_LEN + VLAN_TAG_LEN;
    this.vnetHeaderLength = offload ? VNET_HDR_LEN : 0;
    this.vnetBuffer = Buffer.alloc(this.vnetHeaderLength);
    this.offload = offload ? { tso: true, csum: true } : undefined;
    if (offload) this.maxFrame = Math.max(this.maxFrame, MAX_OFFLOAD_FRAME);
  }

  send(frame: Buffer, meta?: FrameMeta): void {
    this.counted(frame.length, this.refusal(frame.length) ?? this.write(frame, meta));
  }

  /** One frame in parts (headers, payload views), written by one writev: nothing is copied. */
  sendv(parts: readonly Buffer[], meta?: FrameMeta): void {
    const head = parts[0];
    const length = payloadLength(parts);
    // The virtio-net header is read from the frame's headers, which must all be in the first part.
    const l4 = meta?.csumStart;
    // libuv splits a writev of more than 1024 buffers into several writes, and on a TAP each
    // write is a packet of its own: past the limit the frame is joined first.
    if (
      !head ||
      parts.length + 1 > MAX_WRITE_PARTS ||
      (l4 !== undefined && head.length < l4 + TCP_HEADER_LEN)
    ) {
      this.send(Buffer.concat(parts as Buffer[]), meta);
      return;
    }
    this.counted(length, this.refusal(length) ?? this.write(head, meta, parts));
  }

  /** Why a frame of `length` bytes cannot go out now, if it cannot. */
  private refusal(length: number): string | undefined {
    if (this.closing) return "closed";
    if (this.gone) return "link-down";
    if (length > this.maxFrame) return "oversize";
    if (length < ETH_HEADER_LEN) return "truncated";
    return undefined;
  }

  /** Counts a frame of `length` bytes as sent, or as dropped for `refused`. */
  private counted(length: number, refused: string | undefined): void {
    if (refused) {
      countDrop(this.stats, refused);
      return;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += length;
  }

  /**
   * Writes one frame (`parts`: the same frame in pieces, `frame` its first); returns the drop
   * reason when the kernel refused it.
   */
  private write(frame: Buffer, meta: FrameMeta | undefined, parts?: readonly Buffer[]): string | undefined {
    try {
      // One write() is one frame; never batch frames into a writev, the kernel would see one packet.
      // (With a virtio-net header, header and frame go in one writev: that is one packet.)
      if (this.vnetHeaderLength === 0) {
        if (parts) fs.writevSync(this.fd, parts as Buffer[]);
        else fs.writeSync(this.fd, frame);
      } else {
        const header = this.vnetHeader(frame, meta);
        fs.writevSync(this.fd, parts ? [header, ...parts] : [header, frame]);
      }
      return undefined;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "EAGAIN" ? "queue-full" : "write-error";
    }
  }

  start(receiver: FrameReceiver): void {
    if (this.started) throw new TransportError(`${this.name}: start() called twice`);
    this.started = true;
    if (this.closing) return;
    let failure: Error | undefined;
    if (this.vnetHeaderLength === 0) {
      const socket = socketForFd(this.fd);
      this.socket = socket;
      // A TAP read() returns exactly one frame, and a flowing stream emits each read as its own chunk.
      socket.on("data", (chunk: Buffer) => {
        const frame = this.fromWire(chunk);
        if (frame.length < ETH_HEADER_LEN) {
          countDrop(this.stats, "truncated");
          return;
        }
        this.stats.framesIn++;
        this.stats.bytesIn += frame.length;
        receiver.onFrame(frame);
      });
    } else {
      // Reads land in one reused buffer large enough for a super-frame. A receiver that copies what
      // it keeps gets each frame lent from it; any other gets a copy of its own.
      const buffer = Buffer.allocUnsafe(OFFLOAD_READ_BUFFER);
      const lend = receiver.acceptsLent === true;
      this.socket = socketForFd(this.fd, {
        buffer,
        callback: (bytes) => {
          if (bytes < this.vnetHeaderLength + ETH_HEADER_LEN) {
            countDrop(this.stats, "truncated");
            return;
          }
          let chunk: Buffer;
          if (lend) chunk = buffer.subarray(0, bytes);
          else {
            chunk = Buffer.allocUnsafe(bytes);
            buffer.copy(chunk, 0, 0, bytes);
          }
          let meta = vnetMeta(chunk);
          if (lend) {
            if (meta) meta.lent = true;
            else meta = { lent: true };
          }
          const frame = this.fromWire(chunk);
          this.stats.framesIn++;
          this.stats.bytesIn += frame.length;
          receiver.onFrame(frame, meta);
        },
      });
    }
    const socket = this.socket;
    socket.on("error", (error: NodeJS.ErrnoException) => {
      // EBADFD: the kernel removed the device under us, typically because its namespace was deleted.
      const what = error.errno === -EBADFD ? "device was removed" : error.message;
      failure = new TransportError(`${this.name}: ${what}`, { cause: error });
    });
    socket.on("close", () => {
      this.gone = true;
      receiver.onClose?.(this.closing ? undefined : failure);
    });
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const socket = this.socket;
      if (!socket) {
        fs.closeSync(this.fd);
        return resolve();
      }
      if (socket.destroyed && socket.closed) return resolve();
      // Destroying the stream closes the libuv handle and with it the fd, which removes the device.
      socket.once("close", () => resolve());
      socket.destroy();
    });
    return this.closing;
  }

  private fromWire(chunk: Buffer): Buffer {
    return this.vnetHeaderLength === 0 ? chunk : chunk.subarray(this.vnetHeaderLength);
  }

  /**
   * The virtio-net header that tells the kernel what is left to do for `meta`'s frame. One
   * buffer serves every write: writes are synchronous, so it is free again when one returns.
   */
  private vnetHeader(frame: Buffer, meta: FrameMeta | undefined): Buffer {
    const h = this.vnetBuffer;
    h.fill(0);
    if (!meta) return h;
    if (meta.checksumPartial && meta.csumStart !== undefined && meta.csumOffset !== undefined) {
      h[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      h.writeUInt16LE(meta.csumStart, 6);
      h.writeUInt16LE(meta.csumOffset, 8);
    }
    const l4 = meta.csumStart;
    if (meta.gsoSize !== undefined && meta.gsoSize > 0 && l4 !== undefined && l4 + 13 <= frame.length) {
      h[1] = frame.readUInt16BE(12) === ETHERTYPE_IPV6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
      // hdr_len: Ethernet, IP and TCP headers; the TCP data offset is at byte 12 of the TCP header.
      h.writeUInt16LE(l4 + (frame[l4 + 12]! >> 4) * 4, 2);
      h.writeUInt16LE(meta.gsoSize, 4);
    }
    return h;
  }
}

/** Reads the virtio-net header at the start of `chunk` (Linux's virtio_net_hdr_from_skb). */
function vnetMeta(chunk: Buffer): FrameMeta | undefined {
  const flags = chunk[0]!;
  const gsoType = chunk[1]! & 0x7f;
  if (flags === 0 && gsoType === VIRTIO_NET_HDR_GSO_NONE) return undefined;
  const meta: FrameMeta = {};
  if (flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
    meta.checksumPartial = true;
    // The kernel counts csum_start from the start of the frame, past our header.
    meta.csumStart = chunk.readUInt16LE(6);
    meta.csumOffset = chunk.readUInt16LE(8);
  }
  if (gsoType !== VIRTIO_NET_HDR_GSO_NONE) meta.gsoSize = chunk.readUInt16LE(4);
  return meta;
}
