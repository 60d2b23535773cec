/**
 * IPv6 (RFC 8200): the fixed header, and the walk over extension headers to the upper layer.
 * Pure parse and emit over buffers; addresses stay 16-byte views. Hop-by-hop, routing,
 * destination options and fragment headers are walked; a chain longer than MAX_EXTENSION_HEADERS
 * or running past the packet is refused, so a guest cannot make the walk expensive.
 */
import { WireError } from "../errors.js";
import { sum16 } from "./checksum.js";

export const IPV6_HEADER_LEN = 40;
export const NEXT_HOP_BY_HOP = 0;
export const NEXT_TCP = 6;
export const NEXT_UDP = 17;
export const NEXT_ROUTING = 43;
export const NEXT_FRAGMENT = 44;
export const NEXT_ICMPV6 = 58;
export const NEXT_NONE = 59;
export const NEXT_DESTINATION = 60;

/** Extension headers walked before giving up on a packet. */
export const MAX_EXTENSION_HEADERS = 8;

export interface FragmentHeader {
  /** Offset of this fragment's data in the original payload, bytes. */
  offset: number;
  more: boolean;
  id: number;
}

export interface Ipv6Packet {
  trafficClass: number;
  flowLabel: number;
  hopLimit: number;
  src: Buffer;
  dst: Buffer;
  /** The upper-layer protocol after the extension headers (58 ICMPv6, 6 TCP, 17 UDP...). */
  protocol: number;
  /** The upper-layer payload: a view bounded by the payload length. */
  payload: Buffer;
  /** Set when a fragment header was walked. */
  fragment?: FragmentHeader;
  /** Offset of the upper-layer payload from the start of the IPv6 header. */
  headerLength: number;
}

/** Parses the header and walks the extension headers; throws WireError("ipv6", reason). */
export function parseIpv6(buf: Buffer): Ipv6Packet {
  if (buf.length < IPV6_HEADER_LEN) throw new WireError("ipv6", "truncated");
  const first = buf.readUInt32BE(0);
  if (first >>> 28 !== 6) throw new WireError("ipv6", "version");
  const payloadLength = buf.readUInt16BE(4);
  // A jumbogram (payload length 0 with a hop-by-hop option) has no place on an Ethernet link.
  if (IPV6_HEADER_LEN + payloadLength > buf.length) throw new WireError("ipv6", "truncated");
  const end = IPV6_HEADER_LEN + payloadLength;
  let next = buf[6]!;
  let at = IPV6_HEADER_LEN;
  let fragment: FragmentHeader | undefined;
  for (let walked = 0; ; walked++) {
    if (
      next !== NEXT_HOP_BY_HOP &&
      next !== NEXT_ROUTING &&
      next !== NEXT_DESTINATION &&
      next !== NEXT_FRAGMENT
    )
      break;
    if (walked >= MAX_EXTENSION_HEADERS) throw new WireError("ipv6", "extension-chain");
    // Hop-by-hop must come first (RFC 8200 §4.1).
    if (next === NEXT_HOP_BY_HOP && walked > 0) throw new WireError("ipv6", "hop-by-hop-not-first");
    if (at + 8 > end) throw new WireError("ipv6", "extension-truncated");
    const following = buf[at]!;
    if (next === NEXT_FRAGMENT) {
      if (fragment) throw new WireError("ipv6", "two-fragment-headers");
      const word = buf.readUInt16BE(at + 2);
      fragment = { offset: word & 0xfff8, more: (word & 1) === 1, id: buf.readUInt32BE(at + 4) };
      at += 8;
      // A later fragment's data starts here, whatever its first bytes look like.
      if (fragment.offset > 0) {
        next = following;
        break;
      }
    } else {
      const length = (buf[at + 1]! + 1) * 8;
      if (at + length > end) throw new WireError("ipv6", "extension-truncated");
      at += length;
    }
    next = following;
  }
  return {
    trafficClass: (first >>> 20) & 0xff,
    flowLabel: first & 0xfffff,
    hopLimit: buf[7]!,
    src: buf.subarray(8, 24),
    dst: buf.subarray(24, 40),
    protocol: next,
    payload: buf.subarray(at, end),
    ...(fragment ? { fragment } : {}),
    headerLength: at,
  };
}

/** Writes a fixed header (no extension headers) at `offset`. */
export function emitIpv6Header(
  buf: Buffer,
  offset: number,
  h: {
    src: Buffer;
    dst: Buffer;
    protocol: number;
    payloadLength: number;
    hopLimit: number;
    trafficClass?: number;
  },
): void {
  buf.writeUInt32BE(((6 << 28) | ((h.trafficClass ?? 0) << 20)) >>> 0, offset);
  buf.writeUInt16BE(h.payloadLength, offset + 4);
  buf[offset + 6] = h.protocol;
  buf[offset + 7] = h.hopLimit;
  h.src.copy(buf, offset + 8);
  h.dst.copy(buf, offset + 24);
}

/** The two addresses of an IPv6 pseudo-header, summed (see `parseTcpWith`). */
export function addressSum6(src: Buffer, dst: Buffer): number {
  return sum16(src, 0, 16) + sum16(dst, 0, 16);
}

/** Sum of the IPv6 pseudo-header (RFC 8200 §8.1) for upper-layer checksums. */
export function pseudoHeaderSum6(src: Buffer, dst: Buffer, protocol: number, length: number): number {
  return sum16(src, 0, 16) + sum16(dst, 0, 16) + (length >>> 16) + (length & 0xffff) + protocol;
}

/** Text (RFC 5952: lower case, longest zero run as "::") of a 16-byte address. */
export function ipv6ToString(a: Buffer): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(a.readUInt16BE(i));
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(":");
  return `${hex.slice(0, best).join(":")}::${hex.slice(best + bestLength).join(":")}`;
}

/** 16 bytes of an IPv6 address in text, or undefined when it is not one (no zone, no IPv4 tail). */
export function parseIpv6Address(text: string): Buffer | undefined {
  if (!/^[0-9a-fA-F:]+$/.test(text) || text.length > 39) return undefined;
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const parse = (part: string) => (part === "" ? [] : part.split(":"));
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  const out = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i]!;
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    out.writeUInt16BE(Number.parseInt(g, 16), i * 2);
  }
  return out;
}

/** fe80::/10 */
export function isLinkLocal6(a: Buffer): boolean {
  return a[0] === 0xfe && (a[1]! & 0xc0) === 0x80;
}

export function isMulticast6(a: Buffer): boolean {
  return a[0] === 0xff;
}

export function isUnspecified6(a: Buffer): boolean {
  for (let i = 0; i < 16; i++) if (a[i] !== 0) return false;
  return true;
}

/** ff02::1:ffXX:XXXX, the solicited-node group of `a` (RFC 4291 §2.7.1). */
export function solicitedNode(a: Buffer): Buffer {
  const out = Buffer.from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0]);
  a.copy(out, 13, 13, 16);
  return out;
}

/** The Ethernet group address of an IPv6 multicast address: 33:33 and its last 32 bits. */
export function multicastMac6(a: Buffer): Buffer {
  return Buffer.from([0x33, 0x33, a[12]!, a[13]!, a[14]!, a[15]!]);
}

/** fe80::/64 with the modified EUI-64 of `mac` (RFC 4291 appendix A). */
export function linkLocalFromMac(mac: Buffer): Buffer {
  const out = Buffer.alloc(16);
  out[0] = 0xfe;
  out[1] = 0x80;
  out[8] = mac[0]! ^ 0x02;
  out[9] = mac[1]!;
  out[10] = mac[2]!;
  out[11] = 0xff;
  out[12] = 0xfe;
  out[13] = mac[3]!;
  out[14] = mac[4]!;
  out[15] = mac[5]!;
  return out;
}
