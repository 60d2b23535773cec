/** Decodes captured fixtures layer by layer, as the stack will: Ethernet → IPv4 → transport. */
import { ETHERTYPE_IPV4, parseEthernet } from "../../src/wire/ethernet.js";
import { type Ipv4Packet, parseIpv4 } from "../../src/wire/ipv4.js";
import { bytes } from "../fixtures/hex.js";

export function ipv4Of(hexFrame: string): Ipv4Packet {
  const eth = parseEthernet(bytes(hexFrame));
  if (eth.ethertype !== ETHERTYPE_IPV4)
    throw new Error(`fixture is not IPv4: 0x${eth.ethertype.toString(16)}`);
  return parseIpv4(eth.payload);
}

/** The IPv4 packet of a fixture frame as bytes (header included, Ethernet padding cut off). */
export function ipv4BytesOf(hexFrame: string): Buffer {
  const eth = parseEthernet(bytes(hexFrame));
  return eth.payload.subarray(0, parseIpv4(eth.payload).totalLength);
}
