import { WireError } from "../errors.js";
import { addressSum4, finish, sum16 } from "./checksum.js";
import { IPPROTO_UDP } from "./ipv4.js";

export const UDP_HEADER_LEN = 8;

/** A UDP datagram (RFC 768). From `parseUdp`, `payload` is a view into the received buffer. */
export interface UdpDatagram {
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

export interface UdpParseOptions {
  /** Verify the checksum when the sender set one (default true). */
  verifyChecksum?: boolean;
}

/**
 * Parses `buf`, the IPv4 payload; `srcIp`/`dstIp` feed the pseudo-header. The UDP length field
 * bounds the payload; a checksum field of 0 means the sender computed none.
 */
export function parseUdp(
  buf: Buffer,
  srcIp: number,
  dstIp: number,
  options: UdpParseOptions = {},
): UdpDatagram {
  return parseUdpWith(buf, addressSum4(srcIp, dstIp), options);
}

/**
 * `parseUdp` for any IP family: `addressSum` is the pseudo-header's addresses summed
 * (`addressSum4`, `addressSum6`). `checksumRequired`: a zero checksum field is an error, as
 * IPv6 has it (RFC 8200 §8.1), unless `verifyChecksum` is false.
 */
export function parseUdpWith(
  buf: Buffer,
  addressSum: number,
  options: UdpParseOptions & { checksumRequired?: boolean } = {},
): UdpDatagram {
  if (buf.length < UDP_HEADER_LEN) throw new WireError("udp", "truncated");
  const length = buf.readUInt16BE(4);
  if (length < UDP_HEADER_LEN || length > buf.length) throw new WireError("udp", "bad-length");
  if (options.verifyChecksum !== false) {
    if (buf.readUInt16BE(6) !== 0) {
      const sum = sum16(buf, 0, length, addressSum + IPPROTO_UDP + length);
      if (finish(sum) !== 0) throw new WireError("udp", "checksum");
    } else if (options.checksumRequired) throw new WireError("udp", "no-checksum");
  }
  return {
    srcPort: buf.readUInt16BE(0),
    dstPort: buf.readUInt16BE(2),
    payload: buf.subarray(UDP_HEADER_LEN, length),
  };
}

/** Writes the 8-byte header at `offset`; the payload must already be at offset+8. Computes the checksum (0 → 0xffff). Returns 8 + payloadLength. */
export function emitUdp(
  buf: Buffer,
  offset: number,
  srcIp: number,
  dstIp: number,
  srcPort: number,
  dstPort: number,
  payloadLength: number,
): number {
  return emitUdpWith(buf, offset, addressSum4(srcIp, dstIp), srcPort, dstPort, payloadLength);
}

/** `emitUdp` for any IP family: `addressSum` as for `parseUdpWith`. */
export function emitUdpWith(
  buf: Buffer,
  offset: number,
  addressSum: number,
  srcPort: number,
  dstPort: number,
  payloadLength: number,
): number {
  const length = UDP_HEADER_LEN + payloadLength;
  if (length > 0xffff)
    throw new WireError("udp", "bad-length", `udp: ${payloadLength} payload bytes do not fit`);
  buf.writeUInt16BE(srcPort, offset);
  buf.writeUInt16BE(dstPort, offset + 2);
  buf.writeUInt16BE(length, offset + 4);
  buf.writeUInt16BE(0, offset + 6);
  const sum = finish(sum16(buf, offset, offset + length, addressSum + IPPROTO_UDP + length));
  // A computed 0 is sent as its ones'-complement twin, since 0 on the wire means "no checksum".
  buf.writeUInt16BE(sum === 0 ? 0xffff : sum, offset + 6);
  return length;
}

export function formatUdp(d: UdpDatagram): string {
  return `UDP ${d.srcPort} > ${d.dstPort} len=${d.payload.length}`;
}
