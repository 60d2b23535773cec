import { describe, expect, it } from "vitest";
import { BROADCAST_MAC, macToString } from "../../src/wire/address.js";
import {
  ETH_HEADER_LEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  emitEthernetHeader,
  formatEthernet,
  parseEthernet,
} from "../../src/wire/ethernet.js";
import {
  arpReply,
  arpRequest,
  arpRequestVlan100,
  icmpEchoRequest,
  ipv6RouterSolicitation,
} from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { tcpSyn } from "../fixtures/tcp.js";
import { parseOrReason, randomBuffers, truncations } from "./malformed.js";

describe("parseEthernet", () => {
  it("parses a captured broadcast ARP request", () => {
    const f = parseEthernet(bytes(arpRequest));
    expect(f.dst.equals(BROADCAST_MAC)).toBe(true);
    expect(macToString(f.src)).toBe("02:00:00:00:00:0a");
    expect(f.ethertype).toBe(ETHERTYPE_ARP);
    expect(f.vlan).toBeUndefined();
    expect(f.payload.length).toBe(28);
  });

  it.each([
    ["IPv4", icmpEchoRequest, ETHERTYPE_IPV4, 60],
    ["IPv4 TCP", tcpSyn, ETHERTYPE_IPV4, 60],
    ["IPv6", ipv6RouterSolicitation, ETHERTYPE_IPV6, 56],
  ])("parses a captured %s frame", (_n, hexFrame, ethertype, payloadLength) => {
    const frame = bytes(hexFrame);
    const f = parseEthernet(frame);
    expect(f.ethertype).toBe(ethertype);
    expect(f.payload.length).toBe(payloadLength);
    expect(f.payload.byteOffset).toBe(frame.byteOffset + ETH_HEADER_LEN);
  });

  it("strips an 802.1Q tag and reports the VLAN id", () => {
    const f = parseEthernet(bytes(arpRequestVlan100));
    expect(f.vlan).toBe(100);
    expect(f.ethertype).toBe(ETHERTYPE_ARP);
    expect(f.payload.equals(parseEthernet(bytes(arpRequest)).payload)).toBe(true);
  });

  it("keeps only the 12-bit VLAN id of a tag with priority bits", () => {
    const frame = bytes(arpRequestVlan100);
    frame.writeUInt16BE(0xe000 | 100, 14);
    expect(parseEthernet(frame).vlan).toBe(100);
  });

  it("throws truncated for every prefix shorter than the header, tag included", () => {
    expect(truncations(parseEthernet, bytes(arpRequest)).slice(0, 15)).toEqual([
      ...Array(ETH_HEADER_LEN).fill("truncated"),
      "ok",
    ]);
    expect(truncations(parseEthernet, bytes(arpRequestVlan100)).slice(0, 19)).toEqual([
      ...Array(ETH_HEADER_LEN + 4).fill("truncated"),
      "ok",
    ]);
  });

  it("rejects an 802.3 length field in place of an EtherType", () => {
    const frame = bytes(arpRequest);
    frame.writeUInt16BE(0x05dc, 12);
    expect(parseOrReason(parseEthernet, frame)).toBe("not-ethernet-ii");
    const tagged = bytes(arpRequestVlan100);
    tagged.writeUInt16BE(46, 16);
    expect(parseOrReason(parseEthernet, tagged)).toBe("not-ethernet-ii");
  });

  it("only ever throws WireError on random input", () => {
    for (const b of randomBuffers(21, 1000, 40)) parseOrReason(parseEthernet, b);
    // Random bytes behind a VLAN tag.
    for (const b of randomBuffers(22, 500, 30)) {
      parseOrReason(parseEthernet, Buffer.concat([bytes(arpRequestVlan100).subarray(0, 14), b]));
    }
  });
});

describe("emitEthernetHeader", () => {
  it.each([
    ["ARP reply", arpReply],
    ["IPv4", icmpEchoRequest],
  ])("rebuilds the captured %s header byte for byte", (_n, hexFrame) => {
    const frame = bytes(hexFrame);
    const f = parseEthernet(frame);
    const out = Buffer.alloc(ETH_HEADER_LEN + 2, 0xaa);
    expect(emitEthernetHeader(out, 1, f.dst, f.src, f.ethertype)).toBe(ETH_HEADER_LEN);
    expect(out.subarray(1, 1 + ETH_HEADER_LEN).equals(frame.subarray(0, ETH_HEADER_LEN))).toBe(true);
    expect([out[0], out[ETH_HEADER_LEN + 1]]).toEqual([0xaa, 0xaa]);
  });
});

describe("formatEthernet", () => {
  it("prints addresses, type, tag and length", () => {
    expect(formatEthernet(parseEthernet(bytes(arpRequest)))).toBe(
      "ETH 02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff type=0x0806 len=28",
    );
    expect(formatEthernet(parseEthernet(bytes(arpRequestVlan100)))).toBe(
      "ETH 02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff type=0x0806 vlan=100 len=28",
    );
  });
});
