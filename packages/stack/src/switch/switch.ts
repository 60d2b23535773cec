/**
 * A learning Ethernet switch between guest links and the stack. Several guests (VMs, network
 * namespaces) share one subnet: each gets its own DHCP lease from the stack, talks to the others
 * directly (frames never reach the stack), and to the host through the stack's NAT.
 *
 * The switch is itself the stack's `FrameTransport` (its uplink): `stack.attach(sw)`, then
 * `sw.addPort(link)` for every guest, at any time. A link that closes leaves the switch; a guest
 * that comes back (VM reboot, reconnect) is simply a new port.
 */

import {
  countDrop,
  type FrameMeta,
  type FrameReceiver,
  type FrameTransport,
  newTransportStats,
  type OffloadCapability,
  type TransportStats,
} from "@desktopd/core";
import { macToString } from "../wire/address.js";
import { ETH_HEADER_LEN } from "../wire/ethernet.js";
import { payloadLength } from "../wire/payload.js";
import {
  completeChecksum,
  completeChecksumParts,
  segmentTcpFrame,
  segmentTcpParts,
} from "./software-offload.js";

export interface SwitchOptions {
  /**
   * Offer checksum offload and TSO to the stack, finishing checksums and cutting super-frames in
   * software for links that cannot (default true: links with offload, like a TAP, then get
   * 64 KiB frames, and the rest costs what the stack would spend anyway).
   */
  offload?: boolean;
  /** Most MAC addresses remembered; the oldest is forgotten beyond (default 4096). */
  maxMacs?: number;
  /** Told when a port joins or leaves (for logs). */
  onPortChange?(event: "added" | "removed", port: SwitchPortInfo, error?: Error): void;
}

export interface SwitchPortInfo {
  id: number;
  name: string;
  /** MAC addresses learned on this port. */
  macs: string[];
  stats: TransportStats;
}

export interface SwitchPort {
  readonly id: number;
  readonly link: FrameTransport;
  /** Takes the port off the switch and closes its link. */
  close(): Promise<void>;
}

export interface VirtualSwitch extends FrameTransport {
  /** Frames from the stack in parts go on uncopied to a port that writes parts itself. */
  sendv(parts: readonly Buffer[], meta?: FrameMeta): void;
  addPort(link: FrameTransport): SwitchPort;
  ports(): SwitchPortInfo[];
}

export function createSwitch(options: SwitchOptions = {}): VirtualSwitch {
  return new LearningSwitch(options);
}

/** The stack's side of the switch: frames it sends are learned like any port's. */
const UPLINK = 0;

interface Port {
  id: number;
  link: FrameTransport;
  canCsum: boolean;
  canTso: boolean;
}

/** The port's link does what `meta` leaves to do (segmentation, checksum) itself. */
function takesAsIs(port: Port, meta: FrameMeta | undefined): boolean {
  if (!meta) return true;
  const needsTso = meta.gsoSize !== undefined && meta.gsoSize > 0;
  return (!needsTso || port.canTso) && (!meta.checksumPartial || port.canCsum);
}

/**
 * What a port could not do for a frame in parts, done in JavaScript without copying its payload:
 * the frames as parts, or undefined where only the joined frame can be handled.
 */
function offloadedParts(parts: readonly Buffer[], meta: FrameMeta | undefined): Buffer[][] | undefined {
  if (!meta) return undefined;
  // A super-frame is cut (as `deliver` cuts one), each segment with a complete checksum.
  if (meta.gsoSize !== undefined && meta.gsoSize > 0) return segmentTcpParts(parts, meta.gsoSize);
  if (!meta.checksumPartial) return undefined;
  const frame = completeChecksumParts(parts, meta.csumStart ?? 0, meta.csumOffset ?? 0);
  return frame ? [frame] : undefined;
}

class LearningSwitch implements VirtualSwitch {
  readonly name = "switch";
  readonly stats = newTransportStats();
  readonly offload: OffloadCapability | undefined;
  private readonly portsById = new Map<number, Port>();
  /** MAC (as a 48-bit number) → port id; insertion order is age. */
  private readonly macs = new Map<number, number>();
  private readonly maxMacs: number;
  private uplink: FrameReceiver | undefined;
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: SwitchOptions) {
    this.offload = options.offload === false ? undefined : { tso: true, csum: true };
    this.maxMacs = options.maxMacs ?? 4096;
  }

  start(receiver: FrameReceiver): void {
    if (this.uplink) throw new Error("switch: start() called twice");
    this.uplink = receiver;
  }

  addPort(link: FrameTransport): SwitchPort {
    if (this.closed) throw new Error("switch: closed");
    const port: Port = {
      id: this.nextId++,
      link,
      canCsum: link.offload?.csum === true,
      canTso: link.offload?.tso === true,
    };
    this.portsById.set(port.id, port);
    // Announced before start: a link that is already gone reports its close from start().
    this.options.onPortChange?.("added", this.info(port));
    link.start({
      onFrame: (frame, meta) => this.fromPort(port, frame, meta),
      onClose: (error) => this.removePort(port, error),
      // A lent frame is copied before it is queued on another port or given to an uplink that
      // would keep it (see `deliver`).
      acceptsLent: true,
    });
    return {
      id: port.id,
      link,
      close: async () => {
        this.removePort(port);
        await link.close();
      },
    };
  }

  ports(): SwitchPortInfo[] {
    return [...this.portsById.values()].map((p) => this.info(p));
  }

  /** A frame from the stack, out to the guests (counted as out, as any transport counts its sends). */
  send(frame: Buffer, meta?: FrameMeta): void {
    if (frame.length < ETH_HEADER_LEN) return;
    this.stats.framesOut++;
    this.stats.bytesOut += frame.length;
    this.learn(frame, UPLINK);
    this.forward(frame, meta, UPLINK);
  }

  /**
   * A frame from the stack in parts, to one port that writes parts itself: handed on uncopied
   * when the port takes it as it is, or cut and checksummed here into parts of new headers and
   * views of the same payload. Joined and sent as any frame otherwise.
   */
  sendv(parts: readonly Buffer[], meta?: FrameMeta): void {
    const head = parts[0];
    if (!head || head.length < ETH_HEADER_LEN) return;
    const to = head[0]! & 1 ? undefined : this.macs.get(macKey(head, 0));
    const port = to === undefined ? undefined : this.portsById.get(to);
    const frames = port?.link.sendv
      ? takesAsIs(port, meta)
        ? [parts]
        : offloadedParts(parts, meta)
      : undefined;
    if (!frames) {
      this.send(Buffer.concat(parts as Buffer[]), meta);
      return;
    }
    this.stats.framesOut++;
    this.stats.bytesOut += payloadLength(parts);
    this.learn(head, UPLINK);
    if (frames.length === 1 && frames[0] === parts) port!.link.sendv!(parts, meta);
    else for (const frame of frames) port!.link.sendv!(frame);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const links = [...this.portsById.values()].map((p) => p.link);
    this.portsById.clear();
    this.macs.clear();
    await Promise.all(links.map((l) => l.close().catch(() => {})));
    this.uplink?.onClose?.();
  }

  private fromPort(port: Port, frame: Buffer, meta?: FrameMeta): void {
    if (frame.length < ETH_HEADER_LEN) {
      countDrop(port.link.stats, "truncated");
      return;
    }
    // A port may only speak for unicast source addresses: a broadcast source is forged.
    if (frame[6]! & 1) {
      countDrop(this.stats, "multicast-source");
      return;
    }
    // The stack's own MAC cannot move to a guest: that guest would take the gateway over.
    if (this.macs.get(macKey(frame, 6)) === UPLINK) {
      countDrop(this.stats, "spoofed-gateway-source");
      return;
    }
    this.learn(frame, port.id);
    this.forward(frame, meta, port.id);
  }

  private forward(frame: Buffer, meta: FrameMeta | undefined, from: number): void {
    // The group bit covers broadcast and multicast.
    const flood = (frame[0]! & 1) === 1;
    const to = flood ? undefined : this.macs.get(macKey(frame, 0));
    if (to === from) {
      countDrop(this.stats, "hairpin");
      return;
    }
    if (to !== undefined) {
      this.deliver(to, frame, meta, false);
      return;
    }
    // Broadcast, multicast and unknown unicast go everywhere but back; a frame shared by several
    // links must not be finished in place.
    const targets: number[] = [];
    if (from !== UPLINK) targets.push(UPLINK);
    for (const id of this.portsById.keys()) if (id !== from) targets.push(id);
    for (const id of targets) this.deliver(id, frame, meta, targets.length > 1);
  }

  private deliver(to: number, frame: Buffer, meta: FrameMeta | undefined, shared: boolean): void {
    if (to === UPLINK) {
      if (!this.uplink) return;
      this.stats.framesIn++;
      this.stats.bytesIn += frame.length;
      if (meta?.lent && !this.uplink.acceptsLent) [frame, meta] = owned(frame, meta);
      this.uplink.onFrame(frame, meta);
      return;
    }
    const port = this.portsById.get(to);
    if (!port) return;
    // A link keeps what it is sent (a write queue): never memory the sender will read into again.
    if (meta?.lent) [frame, meta] = owned(frame, meta);
    if (!meta || (!meta.checksumPartial && !meta.gsoSize)) {
      port.link.send(frame);
      return;
    }
    if (takesAsIs(port, meta)) {
      port.link.send(frame, meta);
      return;
    }
    const needsTso = meta.gsoSize !== undefined && meta.gsoSize > 0;
    if (needsTso) {
      for (const seg of segmentTcpFrame(frame, meta.gsoSize!)) port.link.send(seg);
      return;
    }
    const own = shared ? Buffer.from(frame) : frame;
    completeChecksum(own, meta.csumStart ?? 0, meta.csumOffset ?? 0);
    port.link.send(own);
  }

  private learn(frame: Buffer, portId: number): void {
    const key = macKey(frame, 6);
    const known = this.macs.get(key);
    if (known === portId) return;
    // Moved (a guest reconnected on a new link) or new: either way it becomes the youngest.
    this.macs.delete(key);
    this.macs.set(key, portId);
    if (this.macs.size > this.maxMacs) {
      // The oldest guest address goes, never the stack's: forgetting it would flood every guest's
      // traffic to the host to all the other guests.
      for (const [mac, id] of this.macs) {
        if (id === UPLINK) continue;
        this.macs.delete(mac);
        break;
      }
      countDrop(this.stats, "mac-table-full");
    }
  }

  private removePort(port: Port, error?: Error): void {
    if (!this.portsById.delete(port.id)) return;
    const info = this.info(port);
    for (const [mac, id] of this.macs) if (id === port.id) this.macs.delete(mac);
    this.options.onPortChange?.("removed", info, error);
  }

  private info(port: Port): SwitchPortInfo {
    const macs: string[] = [];
    for (const [mac, id] of this.macs) if (id === port.id) macs.push(macFromKey(mac));
    return { id: port.id, name: port.link.name, macs, stats: port.link.stats };
  }
}

function macKey(frame: Buffer, offset: number): number {
  return frame.readUIntBE(offset, 6);
}

function macFromKey(key: number): string {
  const b = Buffer.allocUnsafe(6);
  b.writeUIntBE(key, 0, 6);
  return macToString(b);
}

/** A lent frame as one of its own, and its meta without the loan. */
function owned(frame: Buffer, meta: FrameMeta): [Buffer, FrameMeta | undefined] {
  const { lent: _, ...rest } = meta;
  const offload = rest.checksumPartial !== undefined || rest.gsoSize !== undefined;
  return [Buffer.from(frame), offload ? rest : undefined];
}
