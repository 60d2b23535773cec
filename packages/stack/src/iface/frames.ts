import { ARP_LEN, type ArpPacket, emitArp } from "../wire/arp.js";
import { ETH_HEADER_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, emitEthernetHeader } from "../wire/ethernet.js";
import { emitIcmpv4, ICMP_HEADER_LEN, type IcmpPacket } from "../wire/icmpv4.js";
import {
  emitIpv4Header,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HEADER_LEN,
  type Ipv4HeaderFields,
} from "../wire/ipv4.js";
import { copyPayload, type Payload, payloadLength } from "../wire/payload.js";
import { emitTcp, type TcpEmitFields, tcpHeaderLength } from "../wire/tcp.js";
import { emitUdp, UDP_HEADER_LEN } from "../wire/udp.js";

/** Link-layer and IP addressing of one outgoing packet. */
export interface Route {
  srcMac: Buffer;
  dstMac: Buffer;
  srcIp: number;
  dstIp: number;
  /** Where IPv4 identification numbers come from (one sequence per interface); 0 without. */
  ids?: Ipv4Ids;
}

/** IPv4 identification numbers of one interface: fragments of a datagram share one. */
export class Ipv4Ids {
  private last = 0;
  next(): number {
    this.last = (this.last + 1) & 0xffff;
    return this.last;
  }
}

const L3 = ETH_HEADER_LEN;
const L4 = ETH_HEADER_LEN + IPV4_HEADER_LEN;

/** Offset of the TCP header in frames built here (`FrameMeta.csumStart`). */
export const TCP_FRAME_L4_OFFSET = L4;

/**
 * A frame with its Ethernet and IPv4 headers written; the caller fills in `payloadLength` bytes
 * at L4 (of which only `held` are in this buffer when the rest follows in a writev).
 */
function ipv4Frame(
  r: Route,
  fields: Omit<Ipv4HeaderFields, "src" | "dst">,
  held = fields.payloadLength,
): Buffer {
  const frame = Buffer.allocUnsafe(L4 + held);
  emitEthernetHeader(frame, 0, r.dstMac, r.srcMac, ETHERTYPE_IPV4);
  emitIpv4Header(frame, L3, { src: r.srcIp, dst: r.dstIp, ...fields, id: fields.id ?? r.ids?.next() ?? 0 });
  return frame;
}

/**
 * One frame holding a TCP segment; the payload is copied in once. With `partialChecksum` the
 * TCP checksum is left for the link to finish (checksum offload; required for a TSO super-frame).
 */
export function tcpFrame(
  r: Route,
  f: TcpEmitFields,
  payload: Payload | undefined,
  partialChecksum = false,
): Buffer {
  const hlen = tcpHeaderLength(f);
  const plen = payload ? payloadLength(payload) : 0;
  const frame = ipv4Frame(r, { protocol: IPPROTO_TCP, payloadLength: hlen + plen });
  if (payload) copyPayload(payload, frame, L4 + hlen);
  emitTcp(frame, L4, r.srcIp, r.dstIp, f, plen, partialChecksum);
  return frame;
}

/**
 * The Ethernet, IPv4 and TCP headers of a segment whose `payloadLength` bytes the link writes
 * after them (writev): the payload is never copied, so the checksum is left to the link.
 */
export function tcpHeaders(r: Route, f: TcpEmitFields, payloadLength: number): Buffer {
  const hlen = tcpHeaderLength(f);
  const frame = ipv4Frame(r, { protocol: IPPROTO_TCP, payloadLength: hlen + payloadLength }, hlen);
  emitTcp(frame, L4, r.srcIp, r.dstIp, f, payloadLength, true);
  return frame;
}

/**
 * Frames holding one UDP datagram, fragmented at `mtu` when it does not fit
 * (DNS answers over 1472 bytes, for instance).
 */
export function udpFrames(
  r: Route,
  srcPort: number,
  dstPort: number,
  payload: Buffer,
  mtu: number,
): Buffer[] {
  const udpLen = UDP_HEADER_LEN + payload.length;
  if (IPV4_HEADER_LEN + udpLen <= mtu) {
    const frame = ipv4Frame(r, { protocol: IPPROTO_UDP, payloadLength: udpLen });
    payload.copy(frame, L4 + UDP_HEADER_LEN);
    emitUdp(frame, L4, r.srcIp, r.dstIp, srcPort, dstPort, payload.length);
    return [frame];
  }
  // Build the whole datagram once, then cut it into 8-byte-aligned fragments.
  const datagram = Buffer.allocUnsafe(udpLen);
  payload.copy(datagram, UDP_HEADER_LEN);
  emitUdp(datagram, 0, r.srcIp, r.dstIp, srcPort, dstPort, payload.length);
  const chunk = Math.floor((mtu - IPV4_HEADER_LEN) / 8) * 8;
  const id = r.ids?.next() ?? 0;
  const frames: Buffer[] = [];
  for (let off = 0; off < udpLen; off += chunk) {
    const len = Math.min(chunk, udpLen - off);
    const frame = ipv4Frame(r, {
      protocol: IPPROTO_UDP,
      payloadLength: len,
      id,
      dontFragment: false,
      fragmentOffset: off,
      moreFragments: off + len < udpLen,
    });
    datagram.copy(frame, L4, off, off + len);
    frames.push(frame);
  }
  return frames;
}

export function icmpFrame(r: Route, p: IcmpPacket): Buffer {
  const frame = ipv4Frame(r, { protocol: IPPROTO_ICMP, payloadLength: ICMP_HEADER_LEN + p.payload.length });
  emitIcmpv4(frame, L4, p);
  return frame;
}

export function arpFrame(srcMac: Buffer, dstMac: Buffer, p: ArpPacket): Buffer {
  const frame = Buffer.alloc(ETH_HEADER_LEN + ARP_LEN);
  emitEthernetHeader(frame, 0, dstMac, srcMac, ETHERTYPE_ARP);
  emitArp(frame, ETH_HEADER_LEN, p);
  return frame;
}
