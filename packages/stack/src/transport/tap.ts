/**
 * A Linux TAP device as a FrameTransport: the guest's NIC is the TAP interface (moved into the
 * guest's network namespace), and every frame the guest sends is one read() on our fd.
 */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import { ConfigError, TransportError } from "../errors.js";
import { macToString, parseMac } from "../wire/address.js";
import { ETH_HEADER_LEN } from "../wire/ethernet.js";
import { ipOrThrow, runIp } from "./ip-command.js";
import { createTapDevice, IFF_NO_PI, IFF_TAP } from "./tun-device.js";
import { countDrop, type FrameReceiver, type FrameTransport, newTransportStats } from "./types.js";

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
}

export interface TapTransport extends FrameTransport {
  readonly ifname: string;
  readonly netns: string | undefined;
  /** The MAC of the guest-side interface, "aa:bb:cc:dd:ee:ff". */
  readonly guestMac: string;
  readonly mtu: number;
}

const MIN_MTU = 68;
const MAX_MTU = 65520;
const VLAN_TAG_LEN = 4;
const NAME_PATTERN = /^[A-Za-z0-9_.-]+$/;
/** Linux's EBADFD, which os.constants.errno does not list. */
const EBADFD = 77;

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
  const fd = await createTapDevice(kernelName, IFF_TAP | IFF_NO_PI);
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
  return new Tap(fd, ifname, netns, guestMac, mtu);
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
function socketForFd(fd: number): net.Socket {
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
  return new net.Socket({ handle, readable: true, writable: false } as net.SocketConstructorOpts);
}

class Tap implements TapTransport {
  readonly name: string;
  readonly stats = newTransportStats();
  /**
   * Bytes of `struct virtio_net_hdr` before each frame. 0 until IFF_VNET_HDR (checksum offload,
   * TSO) is switched on; `toWire`/`fromWire` are the only places that would add or strip it.
   */
  private readonly vnetHeaderLength = 0;
  private readonly maxFrame: number;
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
  ) {
    this.name = `tap:${netns ? `${netns}/` : ""}${ifname}`;
    this.maxFrame = mtu + ETH_HEADER_LEN + VLAN_TAG_LEN;
  }

  send(frame: Buffer): void {
    const refused = this.closing
      ? "closed"
      : this.gone
        ? "link-down"
        : frame.length > this.maxFrame
          ? "oversize"
          : frame.length < ETH_HEADER_LEN
            ? "truncated"
            : this.write(frame);
    if (refused) {
      countDrop(this.stats, refused);
      return;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
  }

  /** Writes one frame; returns the drop reason when the kernel refused it. */
  private write(frame: Buffer): string | undefined {
    try {
      // One write() is one frame; never batch frames into a writev, the kernel would see one packet.
      fs.writeSync(this.fd, this.toWire(frame));
      return undefined;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "EAGAIN" ? "queue-full" : "write-error";
    }
  }

  start(receiver: FrameReceiver): void {
    if (this.started) throw new TransportError(`${this.name}: start() called twice`);
    this.started = true;
    if (this.closing) return;
    const socket = socketForFd(this.fd);
    this.socket = socket;
    let failure: Error | undefined;
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

  private toWire(frame: Buffer): Buffer {
    return this.vnetHeaderLength === 0 ? frame : Buffer.concat([Buffer.alloc(this.vnetHeaderLength), frame]);
  }

  private fromWire(chunk: Buffer): Buffer {
    return this.vnetHeaderLength === 0 ? chunk : chunk.subarray(this.vnetHeaderLength);
  }
}
