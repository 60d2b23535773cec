import { describe, expect, it } from "vitest";
import { parseIpv4Address, parseMac } from "../../src/wire/address.js";
import { ARP_LEN, ARP_REPLY, ARP_REQUEST, emitArp, formatArp, parseArp } from "../../src/wire/arp.js";
import { ETHERTYPE_ARP, parseEthernet } from "../../src/wire/ethernet.js";
import { arpReply, arpRequest, arpRequestVlan100 } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { mutations, parseOrReason, randomBuffers, truncations } from "./malformed.js";

const A_IP = parseIpv4Address("10.99.0.1")!;
const B_IP = parseIpv4Address("10.99.0.2")!;
const A_MAC = parseMac("02:00:00:00:00:0a")!;
const B_MAC = parseMac("02:00:00:00:00:0b")!;

function arpOf(hexFrame: string) {
  const eth = parseEthernet(bytes(hexFrame));
  expect(eth.ethertype).toBe(ETHERTYPE_ARP);
  return parseArp(eth.payload);
}

describe("parseArp", () => {
  it("parses a captured request", () => {
    const p = arpOf(arpRequest);
    expect(p.op).toBe(ARP_REQUEST);
    expect(p.senderMac.equals(A_MAC)).toBe(true);
    expect(p.senderIp).toBe(A_IP);
    expect(p.targetMac.equals(Buffer.alloc(6))).toBe(true);
    expect(p.targetIp).toBe(B_IP);
  });

  it("parses a captured reply", () => {
    const p = arpOf(arpReply);
    expect(p).toMatchObject({ op: ARP_REPLY, senderIp: B_IP, targetIp: A_IP });
    expect(p.senderMac.equals(B_MAC)).toBe(true);
    expect(p.targetMac.equals(A_MAC)).toBe(true);
  });

  it("parses a request behind an 802.1Q tag", () => {
    const eth = parseEthernet(bytes(arpRequestVlan100));
    expect(eth.vlan).toBe(100);
    expect(parseArp(eth.payload)).toEqual(arpOf(arpRequest));
  });

  it("ignores Ethernet padding after the 28 bytes", () => {
    const padded = Buffer.concat([parseEthernet(bytes(arpReply)).payload, Buffer.alloc(18, 0xee)]);
    expect(parseArp(padded)).toEqual(arpOf(arpReply));
  });

  it("returns views into the frame", () => {
    const frame = bytes(arpReply);
    const p = parseArp(parseEthernet(frame).payload);
    frame[14 + 8] = 0x12;
    expect(p.senderMac[0]).toBe(0x12);
  });

  it("throws truncated for every prefix shorter than 28 bytes", () => {
    const payload = parseEthernet(bytes(arpRequest)).payload;
    expect(truncations(parseArp, payload)).toEqual(Array(ARP_LEN).fill("truncated"));
  });

  it.each([
    ["hardware type", 0, 0x0006],
    ["protocol type", 2, 0x86dd],
  ])("rejects another %s as unsupported", (_name, offset, value) => {
    const payload = Buffer.from(parseEthernet(bytes(arpRequest)).payload);
    payload.writeUInt16BE(value, offset);
    expect(parseOrReason(parseArp, payload)).toBe("unsupported");
  });

  it.each([
    [4, 8],
    [5, 16],
  ])("rejects address length byte %i = %i as unsupported", (offset, value) => {
    const payload = Buffer.from(parseEthernet(bytes(arpRequest)).payload);
    payload[offset] = value;
    expect(parseOrReason(parseArp, payload)).toBe("unsupported");
  });

  it("only ever throws WireError on random and mutated input", () => {
    const payload = parseEthernet(bytes(arpRequest)).payload;
    for (const b of randomBuffers(1, 500, 40)) parseOrReason(parseArp, b);
    for (const b of mutations(2, 500, payload)) parseOrReason(parseArp, b);
  });
});

describe("emitArp", () => {
  it.each([
    ["request", arpRequest],
    ["reply", arpReply],
  ])("round-trips the captured %s byte for byte", (_name, hexFrame) => {
    const payload = parseEthernet(bytes(hexFrame)).payload;
    const out = Buffer.alloc(ARP_LEN + 4, 0xaa);
    expect(emitArp(out, 2, parseArp(payload))).toBe(ARP_LEN);
    expect(out.subarray(2, 2 + ARP_LEN).equals(payload)).toBe(true);
    // Bytes around the packet are untouched.
    expect([out[0], out[1], out[ARP_LEN + 2], out[ARP_LEN + 3]]).toEqual([0xaa, 0xaa, 0xaa, 0xaa]);
  });

  it("builds the reply Linux sent from the request it answered", () => {
    const request = arpOf(arpRequest);
    const out = Buffer.alloc(ARP_LEN);
    emitArp(out, 0, {
      op: ARP_REPLY,
      senderMac: B_MAC,
      senderIp: request.targetIp,
      targetMac: request.senderMac,
      targetIp: request.senderIp,
    });
    expect(out.equals(parseEthernet(bytes(arpReply)).payload)).toBe(true);
  });
});

describe("formatArp", () => {
  it("prints requests, replies and other operations", () => {
    expect(formatArp(arpOf(arpRequest))).toBe("ARP who-has 10.99.0.2 tell 10.99.0.1 (02:00:00:00:00:0a)");
    expect(formatArp(arpOf(arpReply))).toBe(
      "ARP reply 10.99.0.2 is-at 02:00:00:00:00:0b to 10.99.0.1 (02:00:00:00:00:0a)",
    );
    expect(formatArp({ ...arpOf(arpReply), op: 3 })).toMatch(/^ARP op=3 10\.99\.0\.2 /);
  });
});
