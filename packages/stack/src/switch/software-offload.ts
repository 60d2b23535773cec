/**
 * What a NIC does for a frame with a virtio-net header, done in JavaScript for a link without
 * offload: finish a partial checksum, and cut a TCP super-segment into MSS-sized frames.
 * Pure functions over the frame's bytes.
 */
import { addressSum4, finish, sum16 } from "../wire/checksum.js";
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

/**
 * Cuts a TCP super-frame (IPv4 or IPv6) into frames of at most `segmentSize` payload bytes, each
 * with its own IP length, IPv4 ID, sequence number and complete checksums. FIN and PSH stay on
 * the last segment, CWR on the first, as Linux's GSO does. A frame that is not TCP over a plain
 * IP header (IPv6: no extension headers, as this stack emits) comes back whole.
 */
export function segmentTcpFrame(frame: Buffer, segmentSize: number): Buffer[] {
  const l3 = frame.readUInt16BE(12) === ETHERTYPE_VLAN ? ETH_HEADER_LEN + 4 : ETH_HEADER_LEN;
  const ethertype = frame.length >= l3 ? frame.readUInt16BE(l3 - 2) : 0;
  const v6 = ethertype === ETHERTYPE_IPV6;
  if (frame.length < l3 + (v6 ? IPV6_HEADER_LEN : 20) || segmentSize <= 0) return [frame];
  if (v6 ? frame[l3]! >> 4 !== 6 || frame[l3 + 6] !== IPPROTO_TCP : ethertype !== ETHERTYPE_IPV4)
    return [frame];
  if (!v6 && (frame[l3]! >> 4 !== 4 || frame[l3 + 9] !== IPPROTO_TCP)) return [frame];
  const ipHeaderLen = v6 ? IPV6_HEADER_LEN : (frame[l3]! & 0x0f) * 4;
  if (ipHeaderLen < 20) return [frame];
  const l4 = l3 + ipHeaderLen;
  if (frame.length < l4 + 20) return [frame];
  const tcpHeaderLen = (frame[l4 + 12]! >> 4) * 4;
  // A guest's frame may claim less than a TCP header: each segment would be too short to checksum.
  if (tcpHeaderLen < 20) return [frame];
  const headersLen = l4 + tcpHeaderLen;
  // The IP length, not the frame's: a short frame may carry Ethernet padding.
  const ipEnd = v6 ? l4 + frame.readUInt16BE(l3 + 4) : l3 + frame.readUInt16BE(l3 + 2);
  const end = Math.min(frame.length, ipEnd);
  const payloadLen = end - headersLen;
  if (payloadLen < 0) return [frame];
  if (payloadLen <= segmentSize) {
    const whole = Buffer.from(frame.subarray(0, end));
    fillTcpChecksum(whole, l3, l4, v6);
    return [whole];
  }
  const flags = frame[l4 + 13]!;
  const seq = frame.readUInt32BE(l4 + 4);
  const id = v6 ? 0 : frame.readUInt16BE(l3 + 4);
  const out: Buffer[] = [];
  for (let offset = 0, i = 0; offset < payloadLen; offset += segmentSize, i++) {
    const n = Math.min(segmentSize, payloadLen - offset);
    const seg = Buffer.allocUnsafe(headersLen + n);
    frame.copy(seg, 0, 0, headersLen);
    frame.copy(seg, headersLen, headersLen + offset, headersLen + offset + n);
    const last = offset + n === payloadLen;
    if (v6) seg.writeUInt16BE(tcpHeaderLen + n, l3 + 4);
    else {
      seg.writeUInt16BE(ipHeaderLen + tcpHeaderLen + n, l3 + 2);
      seg.writeUInt16BE((id + i) & 0xffff, l3 + 4);
      seg.writeUInt16BE(0, l3 + 10);
      seg.writeUInt16BE(finish(sum16(seg, l3, l4)), l3 + 10);
    }
    seg.writeUInt32BE((seq + offset) >>> 0, l4 + 4);
    seg[l4 + 13] = flags & ~(last ? 0 : TCP_FIN | TCP_PSH) & ~(i === 0 ? 0 : TCP_CWR);
    fillTcpChecksum(seg, l3, l4, v6);
    out.push(seg);
  }
  return out;
}

function fillTcpChecksum(frame: Buffer, l3: number, l4: number, v6: boolean): void {
  const addresses = v6
    ? addressSum6(frame.subarray(l3 + 8, l3 + 24), frame.subarray(l3 + 24, l3 + 40))
    : addressSum4(frame.readUInt32BE(l3 + 12), frame.readUInt32BE(l3 + 16));
  const length = frame.length - l4;
  frame.writeUInt16BE(0, l4 + 16);
  const sum = sum16(frame, l4, frame.length, addresses + IPPROTO_TCP + length);
  frame.writeUInt16BE(finish(sum), l4 + 16);
}
