import { WireError } from "../errors.js";
import { macToString } from "./address.js";

export const ETH_HEADER_LEN = 14;
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_VLAN = 0x8100;
export const ETHERTYPE_IPV6 = 0x86dd;

/** An Ethernet II frame. `dst`, `src` and `payload` are views into the received buffer. */
export interface EthernetFrame {
  dst: Buffer;
  src: Buffer;
  ethertype: number;
  /** 802.1Q VLAN id when the frame carried a tag (tolerated and stripped). */
  vlan?: number;
  payload: Buffer;
}

export function parseEthernet(frame: Buffer): EthernetFrame {
  if (frame.length < ETH_HEADER_LEN) throw new WireError("ethernet", "truncated");
  let ethertype = frame.readUInt16BE(12);
  let offset = ETH_HEADER_LEN;
  let vlan: number | undefined;
  if (ethertype === ETHERTYPE_VLAN) {
    if (frame.length < ETH_HEADER_LEN + 4) throw new WireError("ethernet", "truncated");
    vlan = frame.readUInt16BE(14) & 0x0fff;
    ethertype = frame.readUInt16BE(16);
    offset += 4;
  }
  // 802.3 length field instead of an EtherType: not Ethernet II.
  if (ethertype < 0x0600) throw new WireError("ethernet", "not-ethernet-ii");
  return {
    dst: frame.subarray(0, 6),
    src: frame.subarray(6, 12),
    ethertype,
    vlan,
    payload: frame.subarray(offset),
  };
}

/** Writes a 14-byte Ethernet II header at `offset`; returns the header length. */
export function emitEthernetHeader(
  buf: Buffer,
  offset: number,
  dst: Buffer,
  src: Buffer,
  ethertype: number,
): number {
  dst.copy(buf, offset, 0, 6);
  src.copy(buf, offset + 6, 0, 6);
  buf.writeUInt16BE(ethertype, offset + 12);
  return ETH_HEADER_LEN;
}

export function formatEthernet(f: EthernetFrame): string {
  const tag = f.vlan === undefined ? "" : ` vlan=${f.vlan}`;
  return `ETH ${macToString(f.src)} > ${macToString(f.dst)} type=0x${f.ethertype.toString(16).padStart(4, "0")}${tag} len=${f.payload.length}`;
}
