import { WireError } from "../errors.js";
import { addressSum4, finish, sum16 } from "./checksum.js";
import { IPPROTO_TCP } from "./ipv4.js";

export const TCP_HEADER_LEN = 20;
export const TCP_MAX_HEADER_LEN = 60;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;

const OPT_END = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WSCALE = 3;
const OPT_SACK_PERMITTED = 4;
const OPT_SACK = 5;
const OPT_TIMESTAMP = 8;

/** A parsed TCP segment; `payload` is a view into the received buffer. */
export interface TcpSegment {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  urgent: number;
  headerLength: number;
  mss?: number;
  windowScale?: number;
  sackPermitted: boolean;
  /** SACK blocks as [left, right) sequence pairs. */
  sack?: [number, number][];
  timestamp?: { value: number; echo: number };
  payload: Buffer;
}

export interface TcpParseOptions {
  verifyChecksum?: boolean;
}

export function parseTcp(
  buf: Buffer,
  srcIp: number,
  dstIp: number,
  options: TcpParseOptions = {},
): TcpSegment {
  return parseTcpWith(buf, addressSum4(srcIp, dstIp), options);
}

/**
 * `parseTcp` for any IP family: `addressSum` is the sum of the pseudo-header's two addresses
 * (`addressSum4`, `addressSum6`); protocol and length are added here.
 */
export function parseTcpWith(buf: Buffer, addressSum: number, options: TcpParseOptions = {}): TcpSegment {
  if (buf.length < TCP_HEADER_LEN) throw new WireError("tcp", "truncated");
  const headerLength = (buf[12]! >> 4) * 4;
  if (headerLength < TCP_HEADER_LEN || headerLength > buf.length)
    throw new WireError("tcp", "bad-header-length");
  if (options.verifyChecksum !== false) {
    const sum = sum16(buf, 0, buf.length, addressSum + IPPROTO_TCP + buf.length);
    if (finish(sum) !== 0) throw new WireError("tcp", "checksum");
  }
  const seg: TcpSegment = {
    srcPort: buf.readUInt16BE(0),
    dstPort: buf.readUInt16BE(2),
    seq: buf.readUInt32BE(4),
    ack: buf.readUInt32BE(8),
    flags: buf[13]!,
    window: buf.readUInt16BE(14),
    urgent: buf.readUInt16BE(18),
    headerLength,
    sackPermitted: false,
    payload: buf.subarray(headerLength),
  };
  if (headerLength > TCP_HEADER_LEN) parseOptions(buf, headerLength, seg);
  return seg;
}

function parseOptions(buf: Buffer, end: number, seg: TcpSegment): void {
  let i = TCP_HEADER_LEN;
  while (i < end) {
    const kind = buf[i]!;
    if (kind === OPT_END) return;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) throw new WireError("tcp", "bad-option");
    const len = buf[i + 1]!;
    if (len < 2 || i + len > end) throw new WireError("tcp", "bad-option");
    switch (kind) {
      case OPT_MSS:
        if (len !== 4) throw new WireError("tcp", "bad-option");
        seg.mss = buf.readUInt16BE(i + 2);
        break;
      case OPT_WSCALE:
        if (len !== 3) throw new WireError("tcp", "bad-option");
        // RFC 7323: values above 14 are treated as 14.
        seg.windowScale = Math.min(buf[i + 2]!, 14);
        break;
      case OPT_SACK_PERMITTED:
        if (len !== 2) throw new WireError("tcp", "bad-option");
        seg.sackPermitted = true;
        break;
      case OPT_SACK: {
        if ((len - 2) % 8 !== 0) throw new WireError("tcp", "bad-option");
        const blocks: [number, number][] = [];
        for (let j = i + 2; j < i + len; j += 8) blocks.push([buf.readUInt32BE(j), buf.readUInt32BE(j + 4)]);
        seg.sack = blocks;
        break;
      }
      case OPT_TIMESTAMP:
        if (len !== 10) throw new WireError("tcp", "bad-option");
        seg.timestamp = { value: buf.readUInt32BE(i + 2), echo: buf.readUInt32BE(i + 6) };
        break;
      default:
        break; // unknown options are skipped
    }
    i += len;
  }
}

/** Header fields of a segment to emit. Options are only written when set. */
export interface TcpEmitFields {
  srcPort: number;
  dstPort: number;
  seq: number;
  ack: number;
  flags: number;
  window: number;
  mss?: number;
  windowScale?: number;
  sackPermitted?: boolean;
  sack?: [number, number][];
  timestamp?: { value: number; echo: number };
}

/** Header length (with options, padded to 4 bytes) that `emitTcp` will write for `f`. */
export function tcpHeaderLength(f: TcpEmitFields): number {
  let len = TCP_HEADER_LEN;
  if (f.mss !== undefined) len += 4;
  if (f.windowScale !== undefined) len += 4; // NOP + 3
  if (f.sackPermitted) len += 4; // NOP NOP + 2
  if (f.timestamp) len += 12; // NOP NOP + 10
  const blocks = sackBlocksThatFit(f, len);
  if (blocks > 0) len += 4 + 8 * blocks; // NOP NOP + 2 + 8n
  return len;
}

/** TCP options are at most 40 bytes: SACK blocks are cut to what fits beside the others. */
function sackBlocksThatFit(f: TcpEmitFields, lenWithoutSack: number): number {
  if (!f.sack || f.sack.length === 0) return 0;
  const room = Math.floor((TCP_MAX_HEADER_LEN - lenWithoutSack - 4) / 8);
  return Math.max(0, Math.min(f.sack.length, 3, room));
}

/**
 * Writes the TCP header for `f` at `offset` and fills the checksum over header and the
 * `payloadLength` bytes that must already be in place right after the header.
 * Returns the segment length (header + payload).
 * With `partialChecksum` the checksum field gets only the folded pseudo-header sum, which is
 * what a NIC (or the kernel behind a virtio-net header with NEEDS_CSUM) completes.
 */
export function emitTcp(
  buf: Buffer,
  offset: number,
  srcIp: number,
  dstIp: number,
  f: TcpEmitFields,
  payloadLength: number,
  partialChecksum = false,
): number {
  return emitTcpWith(buf, offset, addressSum4(srcIp, dstIp), f, payloadLength, partialChecksum);
}

/** `emitTcp` for any IP family: `addressSum` as for `parseTcpWith`. */
export function emitTcpWith(
  buf: Buffer,
  offset: number,
  addressSum: number,
  f: TcpEmitFields,
  payloadLength: number,
  partialChecksum = false,
): number {
  const hlen = tcpHeaderLength(f);
  buf.writeUInt16BE(f.srcPort, offset);
  buf.writeUInt16BE(f.dstPort, offset + 2);
  buf.writeUInt32BE(f.seq >>> 0, offset + 4);
  buf.writeUInt32BE(f.ack >>> 0, offset + 8);
  buf[offset + 12] = (hlen / 4) << 4;
  buf[offset + 13] = f.flags;
  buf.writeUInt16BE(f.window, offset + 14);
  buf.writeUInt32BE(0, offset + 16); // checksum + urgent pointer
  let i = offset + TCP_HEADER_LEN;
  if (f.mss !== undefined) {
    buf[i] = OPT_MSS;
    buf[i + 1] = 4;
    buf.writeUInt16BE(f.mss, i + 2);
    i += 4;
  }
  if (f.windowScale !== undefined) {
    buf[i] = OPT_NOP;
    buf[i + 1] = OPT_WSCALE;
    buf[i + 2] = 3;
    buf[i + 3] = f.windowScale;
    i += 4;
  }
  if (f.sackPermitted) {
    buf[i] = OPT_NOP;
    buf[i + 1] = OPT_NOP;
    buf[i + 2] = OPT_SACK_PERMITTED;
    buf[i + 3] = 2;
    i += 4;
  }
  if (f.timestamp) {
    buf[i] = OPT_NOP;
    buf[i + 1] = OPT_NOP;
    buf[i + 2] = OPT_TIMESTAMP;
    buf[i + 3] = 10;
    buf.writeUInt32BE(f.timestamp.value >>> 0, i + 4);
    buf.writeUInt32BE(f.timestamp.echo >>> 0, i + 8);
    i += 12;
  }
  const sackCount = sackBlocksThatFit(f, i - offset);
  if (sackCount > 0) {
    const blocks = f.sack!.slice(0, sackCount);
    buf[i] = OPT_NOP;
    buf[i + 1] = OPT_NOP;
    buf[i + 2] = OPT_SACK;
    buf[i + 3] = 2 + 8 * blocks.length;
    i += 4;
    for (const [left, right] of blocks) {
      buf.writeUInt32BE(left >>> 0, i);
      buf.writeUInt32BE(right >>> 0, i + 4);
      i += 8;
    }
  }
  const length = hlen + payloadLength;
  const pseudo = addressSum + IPPROTO_TCP + length;
  if (partialChecksum) {
    buf.writeUInt16BE(~finish(pseudo) & 0xffff, offset + 16);
    return length;
  }
  const sum = sum16(buf, offset, offset + length, pseudo);
  buf.writeUInt16BE(finish(sum), offset + 16);
  return length;
}

/**
 * The reset answering `seg` for which no connection exists (RFC 9293 3.10.7.1): with its ACK
 * as our sequence number, or acknowledging what it occupied when it carried no ACK.
 */
export function resetFor(seg: TcpSegment): TcpEmitFields {
  const ports = { srcPort: seg.dstPort, dstPort: seg.srcPort, window: 0 };
  if (seg.flags & TCP_ACK) return { ...ports, seq: seg.ack, ack: 0, flags: TCP_RST };
  const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
  return { ...ports, seq: 0, ack: (seg.seq + len) >>> 0, flags: TCP_RST | TCP_ACK };
}

export function formatTcpFlags(flags: number): string {
  let s = "";
  if (flags & TCP_SYN) s += "S";
  if (flags & TCP_FIN) s += "F";
  if (flags & TCP_RST) s += "R";
  if (flags & TCP_PSH) s += "P";
  if (flags & TCP_ACK) s += ".";
  return s || "none";
}

export function formatTcp(seg: TcpSegment): string {
  const opts: string[] = [];
  if (seg.mss !== undefined) opts.push(`mss ${seg.mss}`);
  if (seg.windowScale !== undefined) opts.push(`wscale ${seg.windowScale}`);
  if (seg.sackPermitted) opts.push("sackOK");
  if (seg.timestamp) opts.push(`TS ${seg.timestamp.value}:${seg.timestamp.echo}`);
  if (seg.sack) opts.push(`sack ${seg.sack.map(([l, r]) => `${l}-${r}`).join(",")}`);
  return `TCP ${seg.srcPort} > ${seg.dstPort} [${formatTcpFlags(seg.flags)}] seq=${seg.seq} ack=${seg.ack} win=${seg.window} len=${seg.payload.length}${opts.length ? ` <${opts.join(",")}>` : ""}`;
}
