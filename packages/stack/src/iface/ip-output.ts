import type { FrameMeta, OffloadCapability } from "@desktopd/core";
import type { IpAddr } from "../wire/ip-addr.js";
import type { Payload } from "../wire/payload.js";
import type { TcpEmitFields } from "../wire/tcp.js";

/**
 * Why a packet could not be delivered, in terms both ICMP versions have: no route, host
 * unreachable, port unreachable, administratively prohibited.
 */
export type Unreachable = "net" | "host" | "port" | "admin";

/** What the transport layers know of a received packet's network layer, whatever its family. */
export interface IpHeader {
  readonly src: IpAddr;
  readonly dst: IpAddr;
}

/**
 * Whose shares of the flow tables and buffers a flow is charged to: for a guest's flow, its MAC
 * as a number (`IpOutput.ownerOf`), so a guest has one share whatever its addresses and
 * families; for a flow the host dials into a guest, that guest's address.
 */
export type FlowOwner = number | string;

/** What the transport layers need from the interface to send packets to a guest. */
export interface IpOutput {
  /**
   * `segmentSize`: the payload is larger than one segment and the link may cut it into segments
   * of this size (TSO); only passed when the link reported TSO.
   */
  sendTcp(
    src: IpAddr,
    dst: IpAddr,
    fields: TcpEmitFields,
    payload: Payload | undefined,
    segmentSize?: number,
  ): void;
  sendUdp(src: IpAddr, dst: IpAddr, srcPort: number, dstPort: number, payload: Buffer): void;
  /** ICMP destination unreachable quoting `original` (what `quote` made of the guest's packet). */
  sendUnreachable(src: IpAddr, dst: IpAddr, why: Unreachable, original: Buffer): void;
  /** What an ICMP error about `packet` quotes, in a buffer of its own. */
  quote(packet: IpHeader): Buffer;
  /**
   * Who sent `packet`, a guest's packet that passed the source guard: its MAC as a number, for
   * the flow it opens (see `FlowOwner`). A dual-stack guest is one owner, not one per family.
   */
  ownerOf(packet: IpHeader): FlowOwner;
}

/** The IPv4 and IPv6 interfaces behind one output: the destination's family picks. */
export class DualOutput implements IpOutput {
  constructor(
    private readonly v4: IpOutput,
    private readonly v6: IpOutput | undefined,
  ) {}

  private pick(dst: IpAddr): IpOutput | undefined {
    return typeof dst === "number" ? this.v4 : this.v6;
  }

  sendTcp(
    src: IpAddr,
    dst: IpAddr,
    f: TcpEmitFields,
    payload: Payload | undefined,
    segmentSize?: number,
  ): void {
    this.pick(dst)?.sendTcp(src, dst, f, payload, segmentSize);
  }

  sendUdp(src: IpAddr, dst: IpAddr, srcPort: number, dstPort: number, payload: Buffer): void {
    this.pick(dst)?.sendUdp(src, dst, srcPort, dstPort, payload);
  }

  sendUnreachable(src: IpAddr, dst: IpAddr, why: Unreachable, original: Buffer): void {
    this.pick(dst)?.sendUnreachable(src, dst, why, original);
  }

  quote(packet: IpHeader): Buffer {
    return this.pick(packet.src)?.quote(packet) ?? Buffer.alloc(0);
  }

  ownerOf(packet: IpHeader): FlowOwner {
    return this.pick(packet.src)?.ownerOf(packet) ?? packet.src;
  }
}

/** Offset of the checksum field in a TCP header (`FrameMeta.csumOffset`). */
const TCP_CHECKSUM_OFFSET = 16;

/**
 * What a TCP frame tells a link with checksum offload: the kernel finishes the checksum from
 * `l4Offset`, and cuts a super-segment of `segmentSize` pieces when the link takes TSO.
 * Undefined: the link computes nothing, the frame carries its full checksum.
 */
export function tcpOffloadMeta(
  offload: OffloadCapability | undefined,
  l4Offset: number,
  payloadBytes: number,
  segmentSize: number | undefined,
): FrameMeta | undefined {
  if (!offload?.csum) return undefined;
  const meta: FrameMeta = { checksumPartial: true, csumStart: l4Offset, csumOffset: TCP_CHECKSUM_OFFSET };
  if (offload.tso && segmentSize !== undefined && payloadBytes > segmentSize) {
    meta.gsoSize = segmentSize;
  }
  return meta;
}
