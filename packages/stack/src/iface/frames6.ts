/**
 * Frames of IPv6 packets the router sends to guests: TCP segments (checksum left partial for
 * offload when asked) and UDP datagrams, fragmented at the link MTU when they do not fit — a
 * router may not fragment what it forwards, but these packets start here (RFC 8200 §4.5).
 */
import { ETH_HEADER_LEN, ETHERTYPE_IPV6, emitEthernetHeader } from "../wire/ethernet.js";
import {
  addressSum6,
  emitIpv6Header,
  IPV6_HEADER_LEN,
  NEXT_FRAGMENT,
  NEXT_TCP,
  NEXT_UDP,
} from "../wire/ipv6.js";
import { copyPayload, type Payload, payloadLength } from "../wire/payload.js";
import { emitTcpWith, type TcpEmitFields, tcpHeaderLength } from "../wire/tcp.js";
import { emitUdpWith, UDP_HEADER_LEN } from "../wire/udp.js";

export interface Route6 {
  srcMac: Buffer;
  dstMac: Buffer;
  src: Buffer;
  dst: Buffer;
}

const L3 = ETH_HEADER_LEN;
const L4 = ETH_HEADER_LEN + IPV6_HEADER_LEN;
const FRAGMENT_HEADER_LEN = 8;
const HOP_LIMIT = 64;

/** Offset of the TCP header in frames built here (`FrameMeta.csumStart`). */
export const TCP6_FRAME_L4_OFFSET = L4;

/** Ethernet and IPv6 headers; `held` of the `payloadLength` bytes fit in the buffer (see ipv4Frame). */
function ipv6Frame(r: Route6, protocol: number, payloadLength: number, held = payloadLength): Buffer {
  const frame = Buffer.allocUnsafe(L4 + held);
  emitEthernetHeader(frame, 0, r.dstMac, r.srcMac, ETHERTYPE_IPV6);
  emitIpv6Header(frame, L3, { src: r.src, dst: r.dst, protocol, payloadLength, hopLimit: HOP_LIMIT });
  return frame;
}

/** One frame holding a TCP segment; the payload is copied in once. */
export function tcp6Frame(
  r: Route6,
  f: TcpEmitFields,
  payload: Payload | undefined,
  partialChecksum = false,
): Buffer {
  const hlen = tcpHeaderLength(f);
  const plen = payload ? payloadLength(payload) : 0;
  const frame = ipv6Frame(r, NEXT_TCP, hlen + plen);
  if (payload) copyPayload(payload, frame, L4 + hlen);
  emitTcpWith(frame, L4, addressSum6(r.src, r.dst), f, plen, partialChecksum);
  return frame;
}

/** `tcpHeaders` for IPv6: the headers alone, the payload following in the link's writev. */
export function tcp6Headers(r: Route6, f: TcpEmitFields, payloadLength: number): Buffer {
  const hlen = tcpHeaderLength(f);
  const frame = ipv6Frame(r, NEXT_TCP, hlen + payloadLength, hlen);
  emitTcpWith(frame, L4, addressSum6(r.src, r.dst), f, payloadLength, true);
  return frame;
}

/** Frames holding one UDP datagram; beyond `mtu`, fragments with a fragment header each. */
export function udp6Frames(
  r: Route6,
  srcPort: number,
  dstPort: number,
  payload: Buffer,
  mtu: number,
  nextId: () => number,
): Buffer[] {
  const udpLen = UDP_HEADER_LEN + payload.length;
  if (IPV6_HEADER_LEN + udpLen <= mtu) {
    const frame = ipv6Frame(r, NEXT_UDP, udpLen);
    payload.copy(frame, L4 + UDP_HEADER_LEN);
    emitUdpWith(frame, L4, addressSum6(r.src, r.dst), srcPort, dstPort, payload.length);
    return [frame];
  }
  const datagram = Buffer.allocUnsafe(udpLen);
  payload.copy(datagram, UDP_HEADER_LEN);
  emitUdpWith(datagram, 0, addressSum6(r.src, r.dst), srcPort, dstPort, payload.length);
  // Every fragment but the last carries a multiple of 8 bytes.
  const chunk = Math.floor((mtu - IPV6_HEADER_LEN - FRAGMENT_HEADER_LEN) / 8) * 8;
  const id = nextId();
  const frames: Buffer[] = [];
  for (let off = 0; off < udpLen; off += chunk) {
    const len = Math.min(chunk, udpLen - off);
    const frame = ipv6Frame(r, NEXT_FRAGMENT, FRAGMENT_HEADER_LEN + len);
    frame[L4] = NEXT_UDP;
    frame[L4 + 1] = 0;
    frame.writeUInt16BE(off | (off + len < udpLen ? 1 : 0), L4 + 2);
    frame.writeUInt32BE(id >>> 0, L4 + 4);
    datagram.copy(frame, L4 + FRAGMENT_HEADER_LEN, off, off + len);
    frames.push(frame);
  }
  return frames;
}
