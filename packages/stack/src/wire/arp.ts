import { WireError } from "../errors.js";
import { ipv4ToString, macToString } from "./address.js";

/** ARP for Ethernet/IPv4 only (RFC 826): the only kind a guest NIC sends us. */
export const ARP_LEN = 28;
export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

const HTYPE_ETHERNET = 1;
const PTYPE_IPV4 = 0x0800;

/** A parsed ARP packet. From `parseArp`, the MACs are views into the received buffer: copy to keep. */
export interface ArpPacket {
  op: number;
  senderMac: Buffer;
  senderIp: number;
  targetMac: Buffer;
  targetIp: number;
}

/** Parses the ARP payload of an Ethernet frame; trailing Ethernet padding is ignored. */
export function parseArp(buf: Buffer): ArpPacket {
  if (buf.length < ARP_LEN) throw new WireError("arp", "truncated");
  if (
    buf.readUInt16BE(0) !== HTYPE_ETHERNET ||
    buf.readUInt16BE(2) !== PTYPE_IPV4 ||
    buf[4] !== 6 ||
    buf[5] !== 4
  ) {
    throw new WireError("arp", "unsupported", "arp: not Ethernet/IPv4");
  }
  return {
    op: buf.readUInt16BE(6),
    senderMac: buf.subarray(8, 14),
    senderIp: buf.readUInt32BE(14),
    targetMac: buf.subarray(18, 24),
    targetIp: buf.readUInt32BE(24),
  };
}

/** Writes the 28-byte packet at `offset`; returns `ARP_LEN`. */
export function emitArp(buf: Buffer, offset: number, p: ArpPacket): number {
  buf.writeUInt16BE(HTYPE_ETHERNET, offset);
  buf.writeUInt16BE(PTYPE_IPV4, offset + 2);
  buf[offset + 4] = 6;
  buf[offset + 5] = 4;
  buf.writeUInt16BE(p.op, offset + 6);
  p.senderMac.copy(buf, offset + 8, 0, 6);
  buf.writeUInt32BE(p.senderIp >>> 0, offset + 14);
  p.targetMac.copy(buf, offset + 18, 0, 6);
  buf.writeUInt32BE(p.targetIp >>> 0, offset + 24);
  return ARP_LEN;
}

export function formatArp(p: ArpPacket): string {
  if (p.op === ARP_REQUEST) {
    return `ARP who-has ${ipv4ToString(p.targetIp)} tell ${ipv4ToString(p.senderIp)} (${macToString(p.senderMac)})`;
  }
  if (p.op === ARP_REPLY) {
    return `ARP reply ${ipv4ToString(p.senderIp)} is-at ${macToString(p.senderMac)} to ${ipv4ToString(p.targetIp)} (${macToString(p.targetMac)})`;
  }
  return `ARP op=${p.op} ${ipv4ToString(p.senderIp)} (${macToString(p.senderMac)}) > ${ipv4ToString(p.targetIp)} (${macToString(p.targetMac)})`;
}
