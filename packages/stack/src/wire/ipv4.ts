import { WireError } from "../errors.js";
import { ipv4ToString } from "./address.js";
import { checksum, finish, sum16 } from "./checksum.js";

export const IPV4_HEADER_LEN = 20;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

/** A parsed IPv4 packet; `payload` is a view bounded by the total length (Ethernet padding cut off). */
export interface Ipv4Packet {
  src: number;
  dst: number;
  protocol: number;
  ttl: number;
  tos: number;
  id: number;
  dontFragment: boolean;
  moreFragments: boolean;
  /** Fragment offset in bytes. */
  fragmentOffset: number;
  headerLength: number;
  totalLength: number;
  payload: Buffer;
}

export interface Ipv4ParseOptions {
  /** Verify the header checksum (default true). */
  verifyChecksum?: boolean;
}

export function parseIpv4(buf: Buffer, options: Ipv4ParseOptions = {}): Ipv4Packet {
  if (buf.length < IPV4_HEADER_LEN) throw new WireError("ipv4", "truncated");
  const versionIhl = buf[0]!;
  if (versionIhl >> 4 !== 4) throw new WireError("ipv4", "bad-version");
  // Options (IHL > 5) are skipped, never interpreted.
  const headerLength = (versionIhl & 0x0f) * 4;
  if (headerLength < IPV4_HEADER_LEN) throw new WireError("ipv4", "bad-header-length");
  const totalLength = buf.readUInt16BE(2);
  if (totalLength < headerLength || totalLength > buf.length) throw new WireError("ipv4", "bad-total-length");
  if (options.verifyChecksum !== false && checksum(buf, 0, headerLength) !== 0) {
    throw new WireError("ipv4", "checksum");
  }
  const flagsFrag = buf.readUInt16BE(6);
  return {
    src: buf.readUInt32BE(12),
    dst: buf.readUInt32BE(16),
    protocol: buf[9]!,
    ttl: buf[8]!,
    tos: buf[1]!,
    id: buf.readUInt16BE(4),
    dontFragment: (flagsFrag & 0x4000) !== 0,
    moreFragments: (flagsFrag & 0x2000) !== 0,
    fragmentOffset: (flagsFrag & 0x1fff) * 8,
    headerLength,
    totalLength,
    payload: buf.subarray(headerLength, totalLength),
  };
}

export interface Ipv4HeaderFields {
  src: number;
  dst: number;
  protocol: number;
  payloadLength: number;
  ttl?: number;
  id?: number;
  tos?: number;
  dontFragment?: boolean;
  /** Fragment offset in bytes (a multiple of 8); set with `moreFragments` to emit a fragment. */
  fragmentOffset?: number;
  moreFragments?: boolean;
}

/** Writes a 20-byte IPv4 header (no options) with its checksum at `offset`; returns 20. */
export function emitIpv4Header(buf: Buffer, offset: number, h: Ipv4HeaderFields): number {
  buf[offset] = 0x45;
  buf[offset + 1] = h.tos ?? 0;
  buf.writeUInt16BE(IPV4_HEADER_LEN + h.payloadLength, offset + 2);
  buf.writeUInt16BE(h.id ?? 0, offset + 4);
  const flags = (h.dontFragment === false ? 0 : 0x4000) | (h.moreFragments ? 0x2000 : 0);
  buf.writeUInt16BE(flags | ((h.fragmentOffset ?? 0) >>> 3), offset + 6);
  buf[offset + 8] = h.ttl ?? 64;
  buf[offset + 9] = h.protocol;
  buf.writeUInt16BE(0, offset + 10);
  buf.writeUInt32BE(h.src >>> 0, offset + 12);
  buf.writeUInt32BE(h.dst >>> 0, offset + 16);
  buf.writeUInt16BE(finish(sum16(buf, offset, offset + IPV4_HEADER_LEN)), offset + 10);
  return IPV4_HEADER_LEN;
}

/**
 * What an ICMP error quotes of `p` (RFC 792): its IP header and the first 8 bytes of its payload,
 * in a new buffer. The header is emitted again from the parsed fields rather than sliced from
 * the receive buffer: a reassembled datagram's payload is a fresh buffer with no header before it.
 */
export function icmpQuote(p: Ipv4Packet): Buffer {
  const n = Math.min(8, p.payload.length);
  const out = Buffer.alloc(IPV4_HEADER_LEN + n);
  emitIpv4Header(out, 0, {
    src: p.src,
    dst: p.dst,
    protocol: p.protocol,
    payloadLength: p.totalLength - p.headerLength,
    ttl: p.ttl,
    id: p.id,
    tos: p.tos,
    dontFragment: p.dontFragment,
  });
  p.payload.copy(out, IPV4_HEADER_LEN, 0, n);
  return out;
}

export function formatIpv4(p: Ipv4Packet): string {
  const frag =
    p.moreFragments || p.fragmentOffset > 0 ? ` frag=${p.fragmentOffset}${p.moreFragments ? "+" : ""}` : "";
  return `IPv4 ${ipv4ToString(p.src)} > ${ipv4ToString(p.dst)} proto=${p.protocol} ttl=${p.ttl} id=${p.id} len=${p.totalLength}${frag}`;
}
