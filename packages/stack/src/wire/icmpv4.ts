import { WireError } from "../errors.js";
import { finish, sum16 } from "./checksum.js";

export const ICMP_ECHO_REPLY = 0;
export const ICMP_DEST_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
export const ICMP_TIME_EXCEEDED = 11;

export const ICMP_CODE_NET_UNREACHABLE = 0;
export const ICMP_CODE_HOST_UNREACHABLE = 1;
export const ICMP_CODE_PORT_UNREACHABLE = 3;
export const ICMP_CODE_FRAG_NEEDED = 4;
/** Communication administratively prohibited (RFC 1812): a filter refused the packet. */
export const ICMP_CODE_ADMIN_PROHIBITED = 13;

export const ICMP_HEADER_LEN = 8;

/** An ICMPv4 message (RFC 792). From `parseIcmpv4`, `payload` is a view into the received buffer. */
export interface IcmpPacket {
  type: number;
  code: number;
  /** The 4 bytes after the checksum (id+seq for echo) */
  rest: number;
  /** Echo data, or for errors the quoted IPv4 header and first bytes of the offending datagram. */
  payload: Buffer;
}

export interface IcmpParseOptions {
  /** Verify the checksum (default true). */
  verifyChecksum?: boolean;
}

/** Parses an ICMP message; `buf` is the IPv4 payload, bounded by the IPv4 total length. */
export function parseIcmpv4(buf: Buffer, options: IcmpParseOptions = {}): IcmpPacket {
  if (buf.length < ICMP_HEADER_LEN) throw new WireError("icmpv4", "truncated");
  // The checksum covers the whole message, so a valid one sums (with itself) to zero.
  if (options.verifyChecksum !== false && finish(sum16(buf, 0, buf.length)) !== 0) {
    throw new WireError("icmpv4", "checksum");
  }
  return { type: buf[0]!, code: buf[1]!, rest: buf.readUInt32BE(4), payload: buf.subarray(ICMP_HEADER_LEN) };
}

/**
 * Writes the header at `offset`, copies `payload` right after it (it may already be there, as
 * when turning a request into a reply in place) and fills the checksum. Returns the total length.
 */
export function emitIcmpv4(buf: Buffer, offset: number, p: IcmpPacket): number {
  const length = ICMP_HEADER_LEN + p.payload.length;
  buf[offset] = p.type;
  buf[offset + 1] = p.code;
  buf.writeUInt16BE(0, offset + 2);
  buf.writeUInt32BE(p.rest >>> 0, offset + 4);
  p.payload.copy(buf, offset + ICMP_HEADER_LEN);
  buf.writeUInt16BE(finish(sum16(buf, offset, offset + length)), offset + 2);
  return length;
}

const UNREACHABLE_CODES: Record<number, string> = {
  [ICMP_CODE_NET_UNREACHABLE]: "net-unreachable",
  [ICMP_CODE_HOST_UNREACHABLE]: "host-unreachable",
  2: "protocol-unreachable",
  [ICMP_CODE_PORT_UNREACHABLE]: "port-unreachable",
  [ICMP_CODE_FRAG_NEEDED]: "frag-needed",
  [ICMP_CODE_ADMIN_PROHIBITED]: "admin-prohibited",
};

export function formatIcmpv4(p: IcmpPacket): string {
  const len = `len=${p.payload.length}`;
  switch (p.type) {
    case ICMP_ECHO_REQUEST:
    case ICMP_ECHO_REPLY: {
      const kind = p.type === ICMP_ECHO_REQUEST ? "echo request" : "echo reply";
      return `ICMP ${kind} id=${p.rest >>> 16} seq=${p.rest & 0xffff} ${len}`;
    }
    case ICMP_DEST_UNREACHABLE: {
      const what = UNREACHABLE_CODES[p.code] ?? `code=${p.code}`;
      // RFC 1191: the next-hop MTU sits in the low 16 bits of `rest`.
      const mtu = p.code === ICMP_CODE_FRAG_NEEDED ? ` mtu=${p.rest & 0xffff}` : "";
      return `ICMP unreachable ${what}${mtu} ${len}`;
    }
    case ICMP_TIME_EXCEEDED:
      return `ICMP time-exceeded ${p.code === 0 ? "ttl" : "reassembly"} ${len}`;
    default:
      return `ICMP type=${p.type} code=${p.code} ${len}`;
  }
}
