/**
 * What a NIC does for a frame with a virtio-net header, done in JavaScript for a link without
 * offload: finish a partial checksum, and cut a TCP super-segment into MSS-sized frames.
 * Pure functions over the frame's bytes.
 */
import { addressSum4, finish, sum16, sum16Views } from "../wire/checksum.js";
import { ETH_HEADER_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN } from "../wire/ethernet.js";
import { IPPROTO_TCP } from "../wire/ipv4.js";
import { addressSum6, IPV6_HEADER_LEN } from "../wire/ipv6.js";
import { TCP_FIN, TCP_PSH } from "../wire/tcp.js";

const TCP_CWR = 0x80;

/**
 * Completes a partial TCP/UDP checksum in place: the field at `csumStart + csumOffset` holds the
 * pseudo-header sum, and the sum over everything from `csumStart` to the end goes into it.
 */
export function completeChecksum(frame: Buffer, csumStart: number, csumOffset: number): void {
  const field = csumStart + csumOffset;
  if (csumStart >= frame.length || field + 2 > frame.length) return;
  let sum = finish(sum16(frame, csumStart, frame.length));
  // UDP transmits a computed zero as 0xffff (zero means "no checksum"); harmless for TCP.
  if (sum === 0 && csumOffset === 6) sum = 0xffff;
  frame.writeUInt16BE(sum, field);
}

/** Where the headers of a TCP frame lie, and where its IP packet ends. */
interface TcpLayout {
  l3: number;
  l4: number;
  v6: boolean;
  ipHeaderLen: number;
  tcpHeaderLen: number;
  headersLen: number;
  /** End of the IP packet within the frame: a short frame may carry Ethernet padding. */
  end: number;
}

/**
 * The layout of a TCP segment over a plain IP header (IPv6: no extension headers, as this stack
 * emits) whose headers all lie in `head`, the start of a frame of `frameLength` bytes; undefined
 * for any other frame.
 */
function tcpLayout(head: Buffer, frameLength: number): TcpLayout | undefined {
  const l3 =
    head.length >= ETH_HEADER_LEN && head.readUInt16BE(12) === ETHERTYPE_VLAN
      ? ETH_HEADER_LEN + 4
      : ETH_HEADER_LEN;
  const ethertype = head.length >= l3 ? head.readUInt16BE(l3 - 2) : 0;
  const v6 = ethertype === ETHERTYPE_IPV6;
  if (head.length < l3 + (v6 ? IPV6_HEADER_LEN : 20)) return undefined;
  if (v6 ? head[l3]! >> 4 !== 6 || head[l3 + 6] !== IPPROTO_TCP : ethertype !== ETHERTYPE_IPV4)
    return undefined;
  if (!v6 && (head[l3]! >> 4 !== 4 || head[l3 + 9] !== IPPROTO_TCP)) return undefined;
  const ipHeaderLen = v6 ? IPV6_HEADER_LEN : (head[l3]! & 0x0f) * 4;
  if (ipHeaderLen < 20) return undefined;
  const l4 = l3 + ipHeaderLen;
  if (head.length < l4 + 20) return undefined;
  const tcpHeaderLen = (head[l4 + 12]! >> 4) * 4;
  // A guest's frame may claim less than a TCP header: each segment would be too short to checksum.
  if (tcpHeaderLen < 20) return undefined;
  const headersLen = l4 + tcpHeaderLen;
  if (head.length < headersLen) return undefined;
  const ipEnd = v6 ? l4 + head.readUInt16BE(l3 + 4) : l3 + head.readUInt16BE(l3 + 2);
  const end = Math.min(frameLength, ipEnd);
  if (end < headersLen) return undefined;
  return { l3, l4, v6, ipHeaderLen, tcpHeaderLen, headersLen, end };
}

/**
 * Writes into `seg` the headers of segment `index` of a super-frame whose headers are `head`:
 * `n` payload bytes at `offset`. FIN and PSH stay on the last segment, CWR on the first, as
 * Linux's GSO does. The TCP checksum is left for the caller.
 */
function segmentHeaders(
  seg: Buffer,
  head: Buffer,
  at: TcpLayout,
  offset: number,
  n: number,
  index: number,
  last: boolean,
): void {
  const { l3, l4 } = at;
  head.copy(seg, 0, 0, at.headersLen);
  if (at.v6) seg.writeUInt16BE(at.tcpHeaderLen + n, l3 + 4);
  else {
    seg.writeUInt16BE(at.ipHeaderLen + at.tcpHeaderLen + n, l3 + 2);
    seg.writeUInt16BE((head.readUInt16BE(l3 + 4) + index) & 0xffff, l3 + 4);
    seg.writeUInt16BE(0, l3 + 10);
    seg.writeUInt16BE(finish(sum16(seg, l3, l4)), l3 + 10);
  }
  seg.writeUInt32BE((head.readUInt32BE(l4 + 4) + offset) >>> 0, l4 + 4);
  seg[l4 + 13] = head[l4 + 13]! & ~(last ? 0 : TCP_FIN | TCP_PSH) & ~(index === 0 ? 0 : TCP_CWR);
}

/**
 * Cuts a TCP super-frame (IPv4 or IPv6) into frames of at most `segmentSize` payload bytes, each
 * with its own IP length, IPv4 ID, sequence number and complete checksums. A frame that is not
 * TCP over a plain IP header comes back whole.
 */
export function segmentTcpFrame(frame: Buffer, segmentSize: number): Buffer[] {
  const at = segmentSize > 0 ? tcpLayout(frame, frame.length) : undefined;
  if (!at) return [frame];
  const payloadLen = at.end - at.headersLen;
  if (payloadLen <= segmentSize) {
    const whole = Buffer.from(frame.subarray(0, at.end));
    fillTcpChecksum(whole, at);
    return [whole];
  }
  const out: Buffer[] = [];
  for (let offset = 0, i = 0; offset < payloadLen; offset += segmentSize, i++) {
    const n = Math.min(segmentSize, payloadLen - offset);
    const seg = Buffer.allocUnsafe(at.headersLen + n);
    segmentHeaders(seg, frame, at, offset, n, i, offset + n === payloadLen);
    frame.copy(seg, at.headersLen, at.headersLen + offset, at.headersLen + offset + n);
    fillTcpChecksum(seg, at);
    out.push(seg);
  }
  return out;
}

/**
 * `segmentTcpFrame` for a frame given in parts, its headers all in the first: each segment comes
 * back as parts too, new headers followed by views of the payload, which is never copied.
 * Undefined when the frame is not one to cut that way (the caller joins it and cuts the frame).
 */
export function segmentTcpParts(parts: readonly Buffer[], segmentSize: number): Buffer[][] | undefined {
  const head = parts[0];
  if (!head || segmentSize <= 0) return undefined;
  let frameLength = 0;
  for (const part of parts) frameLength += part.length;
  const at = tcpLayout(head, frameLength);
  if (!at) return undefined;
  const payloadLen = at.end - at.headersLen;
  const out: Buffer[][] = [];
  for (let offset = 0, i = 0; offset === 0 || offset < payloadLen; offset += segmentSize, i++) {
    const n = Math.min(segmentSize, payloadLen - offset);
    const headers = Buffer.allocUnsafe(at.headersLen);
    segmentHeaders(headers, head, at, offset, n, i, offset + n === payloadLen);
    const payload = viewsOf(parts, at.headersLen + offset, at.headersLen + offset + n);
    const length = at.tcpHeaderLen + n;
    headers.writeUInt16BE(0, at.l4 + 16);
    const sum = sum16Views(payload, sum16(headers, at.l4, at.headersLen, tcpPseudoSum(headers, at, length)));
    headers.writeUInt16BE(finish(sum), at.l4 + 16);
    out.push([headers, ...payload]);
    if (n === 0) break;
  }
  return out;
}

/**
 * `completeChecksum` for a frame given in parts: a copy of the first part with the checksum
 * written into it, then the other parts as they are. Undefined when the checksum field does not
 * lie in the first part.
 */
export function completeChecksumParts(
  parts: readonly Buffer[],
  csumStart: number,
  csumOffset: number,
): Buffer[] | undefined {
  const head = parts[0];
  const field = csumStart + csumOffset;
  if (!head || csumStart > head.length || field + 2 > head.length) return undefined;
  const copy = Buffer.from(head);
  let sum = finish(
    sum16Views(parts.length > 1 ? [copy.subarray(csumStart), ...parts.slice(1)] : [copy.subarray(csumStart)]),
  );
  if (sum === 0 && csumOffset === 6) sum = 0xffff;
  copy.writeUInt16BE(sum, field);
  return [copy, ...parts.slice(1)];
}

/** The bytes `start` to `end` of the concatenation of `parts`, as views. */
function viewsOf(parts: readonly Buffer[], start: number, end: number): Buffer[] {
  const views: Buffer[] = [];
  let at = 0;
  for (const part of parts) {
    const partEnd = at + part.length;
    if (partEnd > start && at < end)
      views.push(part.subarray(Math.max(0, start - at), Math.min(part.length, end - at)));
    at = partEnd;
    if (at >= end) break;
  }
  return views;
}

/** The TCP pseudo-header's sum for a segment of `length` TCP bytes with `headers`' addresses. */
function tcpPseudoSum(headers: Buffer, at: TcpLayout, length: number): number {
  const addresses = at.v6
    ? addressSum6(headers.subarray(at.l3 + 8, at.l3 + 24), headers.subarray(at.l3 + 24, at.l3 + 40))
    : addressSum4(headers.readUInt32BE(at.l3 + 12), headers.readUInt32BE(at.l3 + 16));
  return addresses + IPPROTO_TCP + length;
}

function fillTcpChecksum(frame: Buffer, at: TcpLayout): void {
  frame.writeUInt16BE(0, at.l4 + 16);
  const sum = sum16(frame, at.l4, frame.length, tcpPseudoSum(frame, at, frame.length - at.l4));
  frame.writeUInt16BE(finish(sum), at.l4 + 16);
}
