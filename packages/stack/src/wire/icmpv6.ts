/**
 * ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861, RDNSS of RFC 8106): echo, errors with the
 * offending packet quoted, and the four ND messages a router and its hosts exchange. Pure parse
 * and emit over buffers; the checksum covers the IPv6 pseudo-header.
 */
import { WireError } from "../errors.js";
import { finish, sum16 } from "./checksum.js";
import { emitIpv6Header, IPV6_HEADER_LEN, NEXT_ICMPV6, pseudoHeaderSum6 } from "./ipv6.js";

export const ICMPV6_DEST_UNREACHABLE = 1;
export const ICMPV6_PACKET_TOO_BIG = 2;
export const ICMPV6_TIME_EXCEEDED = 3;
export const ICMPV6_PARAMETER_PROBLEM = 4;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
export const ND_ROUTER_SOLICIT = 133;
export const ND_ROUTER_ADVERT = 134;
export const ND_NEIGHBOR_SOLICIT = 135;
export const ND_NEIGHBOR_ADVERT = 136;

export const UNREACH_NO_ROUTE = 0;
export const UNREACH_ADMIN_PROHIBITED = 1;
/** The source's scope (link-local) does not reach the destination (RFC 4443 §3.1). */
export const UNREACH_BEYOND_SCOPE = 2;
export const UNREACH_ADDRESS = 3;
export const UNREACH_PORT = 4;

export const OPT_SOURCE_LL = 1;
export const OPT_TARGET_LL = 2;
export const OPT_PREFIX_INFO = 3;
export const OPT_MTU = 5;
export const OPT_RDNSS = 25;

/** An error message quotes as much of the offending packet as fits the minimum MTU (RFC 4443 §2.4). */
const MIN_MTU = 1280;

export interface Icmpv6Message {
  type: number;
  code: number;
  /** The message body after the 4-byte header (a view). */
  body: Buffer;
}

/** Parses and checks an ICMPv6 message: `buf` is the IPv6 payload, `src`/`dst` the packet's addresses. */
export function parseIcmpv6(buf: Buffer, src: Buffer, dst: Buffer, verifyChecksum = true): Icmpv6Message {
  if (buf.length < 4) throw new WireError("icmpv6", "truncated");
  if (verifyChecksum) {
    const sum = pseudoHeaderSum6(src, dst, NEXT_ICMPV6, buf.length) + sum16(buf, 0, buf.length);
    if (finish(sum) !== 0) throw new WireError("icmpv6", "checksum");
  }
  return { type: buf[0]!, code: buf[1]!, body: buf.subarray(4) };
}

/**
 * A whole IPv6 packet carrying one ICMPv6 message: header, type, code, `body`, checksum filled.
 * Hop limit 255 is what ND requires (RFC 4861 §7.1) and harmless for the rest.
 */
export function emitIcmpv6Packet(
  src: Buffer,
  dst: Buffer,
  type: number,
  code: number,
  body: Buffer,
  hopLimit = 255,
): Buffer {
  const length = 4 + body.length;
  const packet = Buffer.alloc(IPV6_HEADER_LEN + length);
  emitIpv6Header(packet, 0, { src, dst, protocol: NEXT_ICMPV6, payloadLength: length, hopLimit });
  packet[IPV6_HEADER_LEN] = type;
  packet[IPV6_HEADER_LEN + 1] = code;
  body.copy(packet, IPV6_HEADER_LEN + 4);
  const sum = pseudoHeaderSum6(src, dst, NEXT_ICMPV6, length) + sum16(packet, IPV6_HEADER_LEN, packet.length);
  packet.writeUInt16BE(finish(sum), IPV6_HEADER_LEN + 2);
  return packet;
}

/** An error (unreachable, too big, time exceeded) quoting `offending` (the whole IPv6 packet), trimmed to 1280 bytes. */
export function emitIcmpv6Error(
  src: Buffer,
  dst: Buffer,
  type: number,
  code: number,
  offending: Buffer,
  param = 0,
): Buffer {
  const room = MIN_MTU - IPV6_HEADER_LEN - 8;
  const body = Buffer.alloc(4 + Math.min(room, offending.length));
  body.writeUInt32BE(param >>> 0, 0);
  offending.copy(body, 4, 0, body.length - 4);
  return emitIcmpv6Packet(src, dst, type, code, body, 64);
}

export interface NdOption {
  type: number;
  /** The option's bytes after type and length (a view). */
  data: Buffer;
}

/** Options of an ND message; a zero length, or one running past the message, is malformed (RFC 4861 §4.6). */
export function parseNdOptions(buf: Buffer): NdOption[] {
  const options: NdOption[] = [];
  for (let at = 0; at < buf.length; ) {
    if (at + 2 > buf.length) throw new WireError("ndp", "option-truncated");
    const length = buf[at + 1]! * 8;
    if (length === 0) throw new WireError("ndp", "option-zero-length");
    if (at + length > buf.length) throw new WireError("ndp", "option-truncated");
    options.push({ type: buf[at]!, data: buf.subarray(at + 2, at + length) });
    at += length;
  }
  return options;
}

/** The link-layer address of a source/target LL option, if there is one (Ethernet: 6 bytes). */
export function linkLayerOption(options: readonly NdOption[], type: number): Buffer | undefined {
  const o = options.find((x) => x.type === type);
  return o && o.data.length >= 6 ? o.data.subarray(0, 6) : undefined;
}

export interface NeighborMessage {
  target: Buffer;
  options: NdOption[];
  /** NA only: router, solicited, override. */
  flags: number;
}

/** NS or NA body: 4 bytes (NA flags), the 16-byte target, options. */
export function parseNeighborMessage(body: Buffer): NeighborMessage {
  if (body.length < 20) throw new WireError("ndp", "truncated");
  return { flags: body[0]!, target: body.subarray(4, 20), options: parseNdOptions(body.subarray(20)) };
}

export const NA_ROUTER = 0x80;
export const NA_SOLICITED = 0x40;
export const NA_OVERRIDE = 0x20;

export function neighborAdvertBody(target: Buffer, mac: Buffer, flags: number): Buffer {
  const body = Buffer.alloc(20 + 8);
  body[0] = flags;
  target.copy(body, 4);
  body[20] = OPT_TARGET_LL;
  body[21] = 1;
  mac.copy(body, 22);
  return body;
}

export function neighborSolicitBody(target: Buffer, mac: Buffer): Buffer {
  const body = Buffer.alloc(20 + 8);
  target.copy(body, 4);
  body[20] = OPT_SOURCE_LL;
  body[21] = 1;
  mac.copy(body, 22);
  return body;
}

/** RS body: 4 reserved bytes, options. */
export function parseRouterSolicit(body: Buffer): NdOption[] {
  if (body.length < 4) throw new WireError("ndp", "truncated");
  return parseNdOptions(body.subarray(4));
}

export interface RouterAdvert {
  curHopLimit: number;
  /** Seconds; 0: not a default router. */
  routerLifetime: number;
  mac: Buffer;
  mtu?: number;
  prefixes: {
    prefix: Buffer;
    length: number;
    validLifetime: number;
    preferredLifetime: number;
    autonomous: boolean;
    onLink: boolean;
  }[];
  /** Recursive DNS servers (RFC 8106) and their lifetime. */
  dns?: { servers: Buffer[]; lifetime: number };
}

/** RA body: hop limit, flags, lifetime, reachable and retrans timers, then the options. */
export function routerAdvertBody(ra: RouterAdvert): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(12);
  head[0] = ra.curHopLimit;
  head.writeUInt16BE(ra.routerLifetime, 2);
  parts.push(head);
  const ll = Buffer.alloc(8);
  ll[0] = OPT_SOURCE_LL;
  ll[1] = 1;
  ra.mac.copy(ll, 2);
  parts.push(ll);
  if (ra.mtu !== undefined) {
    const mtu = Buffer.alloc(8);
    mtu[0] = OPT_MTU;
    mtu[1] = 1;
    mtu.writeUInt32BE(ra.mtu, 4);
    parts.push(mtu);
  }
  for (const p of ra.prefixes) {
    const o = Buffer.alloc(32);
    o[0] = OPT_PREFIX_INFO;
    o[1] = 4;
    o[2] = p.length;
    o[3] = (p.onLink ? 0x80 : 0) | (p.autonomous ? 0x40 : 0);
    o.writeUInt32BE(p.validLifetime, 4);
    o.writeUInt32BE(p.preferredLifetime, 8);
    p.prefix.copy(o, 16);
    parts.push(o);
  }
  if (ra.dns && ra.dns.servers.length > 0) {
    const o = Buffer.alloc(8 + 16 * ra.dns.servers.length);
    o[0] = OPT_RDNSS;
    o[1] = 1 + 2 * ra.dns.servers.length;
    o.writeUInt32BE(ra.dns.lifetime, 4);
    for (const [i, server] of ra.dns.servers.entries()) server.copy(o, 8 + 16 * i);
    parts.push(o);
  }
  return Buffer.concat(parts);
}

/** Parses an RA body (for tests and for refusing a guest's). */
export function parseRouterAdvert(body: Buffer): Omit<RouterAdvert, "mac"> & { mac?: Buffer } {
  if (body.length < 12) throw new WireError("ndp", "truncated");
  const options = parseNdOptions(body.subarray(12));
  const ra: Omit<RouterAdvert, "mac"> & { mac?: Buffer } = {
    curHopLimit: body[0]!,
    routerLifetime: body.readUInt16BE(2),
    prefixes: [],
  };
  const mac = linkLayerOption(options, OPT_SOURCE_LL);
  if (mac) ra.mac = mac;
  for (const o of options) {
    if (o.type === OPT_MTU && o.data.length >= 6) ra.mtu = o.data.readUInt32BE(2);
    if (o.type === OPT_PREFIX_INFO && o.data.length >= 30) {
      ra.prefixes.push({
        length: o.data[0]!,
        onLink: (o.data[1]! & 0x80) !== 0,
        autonomous: (o.data[1]! & 0x40) !== 0,
        validLifetime: o.data.readUInt32BE(2),
        preferredLifetime: o.data.readUInt32BE(6),
        prefix: o.data.subarray(14, 30),
      });
    }
    if (o.type === OPT_RDNSS && o.data.length >= 22) {
      const servers: Buffer[] = [];
      for (let at = 6; at + 16 <= o.data.length; at += 16) servers.push(o.data.subarray(at, at + 16));
      ra.dns = { lifetime: o.data.readUInt32BE(2), servers };
    }
  }
  return ra;
}
