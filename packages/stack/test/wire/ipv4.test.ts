import { describe, expect, it } from "vitest";
import { parseIpv4Address } from "../../src/wire/address.js";
import { checksum } from "../../src/wire/checksum.js";
import {
  emitIpv4Header,
  formatIpv4,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HEADER_LEN,
  parseIpv4,
} from "../../src/wire/ipv4.js";
import { icmpFragment0, icmpFragment1, icmpFragment2 } from "../fixtures/fragments.js";
import {
  icmpEchoReply,
  icmpEchoRequest,
  icmpPortUnreachable,
  udpRequest,
  udpToClosedPort,
} from "../fixtures/frames.js";
import { tcpRst, tcpSynAck } from "../fixtures/tcp.js";
import { ipv4BytesOf } from "./decode.js";
import { mutations, parseOrReason, randomBuffers, truncations } from "./malformed.js";

const A = parseIpv4Address("10.99.0.1")!;
const B = parseIpv4Address("10.99.0.2")!;

describe("parseIpv4", () => {
  it("parses a captured ICMP echo request", () => {
    const ip = parseIpv4(ipv4BytesOf(icmpEchoRequest));
    expect(ip).toMatchObject({
      src: A,
      dst: B,
      protocol: IPPROTO_ICMP,
      ttl: 64,
      tos: 0,
      id: 17636,
      dontFragment: true,
      moreFragments: false,
      fragmentOffset: 0,
      headerLength: 20,
      totalLength: 60,
    });
    expect(ip.payload.length).toBe(40);
  });

  it.each([
    ["UDP", udpRequest, IPPROTO_UDP, true, 0],
    ["TCP SYN-ACK", tcpSynAck, IPPROTO_TCP, true, 0],
    ["echo reply", icmpEchoReply, IPPROTO_ICMP, false, 0],
    ["port unreachable", icmpPortUnreachable, IPPROTO_ICMP, false, 0xc0],
  ])("parses the captured %s header", (_n, hexFrame, protocol, dontFragment, tos) => {
    expect(parseIpv4(ipv4BytesOf(hexFrame))).toMatchObject({ protocol, dontFragment, tos });
  });

  it.each([
    [icmpFragment0, 0, true, 1480],
    [icmpFragment1, 1480, true, 1480],
    [icmpFragment2, 2960, false, 48],
  ])("parses captured fragment flags and offsets (%#)", (hexFrame, fragmentOffset, moreFragments, length) => {
    const ip = parseIpv4(ipv4BytesOf(hexFrame));
    expect(ip).toMatchObject({ id: 18031, fragmentOffset, moreFragments, dontFragment: false });
    expect(ip.payload.length).toBe(length);
  });

  it("cuts Ethernet padding off with the total length", () => {
    const ip = ipv4BytesOf(tcpRst);
    const padded = Buffer.concat([ip, Buffer.alloc(6)]);
    const parsed = parseIpv4(padded);
    expect(parsed.payload.length).toBe(20);
    expect(parsed.payload.equals(parseIpv4(ip).payload)).toBe(true);
  });

  it("skips header options", () => {
    // The captured header with four option bytes (NOP NOP NOP EOL) spliced in.
    const ip = ipv4BytesOf(udpRequest);
    const withOptions = Buffer.concat([ip.subarray(0, 20), Buffer.from([1, 1, 1, 0]), ip.subarray(20)]);
    withOptions[0] = 0x46;
    withOptions.writeUInt16BE(ip.length + 4, 2);
    withOptions.writeUInt16BE(0, 10);
    withOptions.writeUInt16BE(checksum(withOptions, 0, 24), 10);
    const parsed = parseIpv4(withOptions);
    expect(parsed.headerLength).toBe(24);
    expect(parsed.payload.equals(parseIpv4(ip).payload)).toBe(true);
  });

  it("throws truncated under 20 bytes and bad-total-length for every longer cut", () => {
    const ip = ipv4BytesOf(udpToClosedPort);
    expect(truncations(parseIpv4, ip)).toEqual([
      ...Array(IPV4_HEADER_LEN).fill("truncated"),
      ...Array(ip.length - IPV4_HEADER_LEN).fill("bad-total-length"),
    ]);
  });

  it.each([
    ["bad-version", 0, 0x65],
    ["bad-header-length", 0, 0x44],
    ["bad-total-length", 3, 19],
    ["checksum", 8, 63],
  ])("reports %s", (reason, offset, value) => {
    const ip = Buffer.from(ipv4BytesOf(udpRequest));
    ip[offset] = value;
    expect(parseOrReason(parseIpv4, ip)).toBe(reason);
  });

  it("rejects a header length beyond the total length", () => {
    const ip = Buffer.from(ipv4BytesOf(tcpRst));
    ip[0] = 0x4f; // 60-byte header in a 40-byte packet
    expect(parseOrReason(parseIpv4, ip)).toBe("bad-total-length");
  });

  it("rejects every one-byte change of a captured header, unless checksums are not verified", () => {
    const ip = ipv4BytesOf(icmpEchoRequest);
    const header = ip.subarray(0, IPV4_HEADER_LEN);
    for (const h of mutations(31, 300, header)) {
      const b = Buffer.concat([h, ip.subarray(IPV4_HEADER_LEN)]);
      expect(parseOrReason(parseIpv4, b)).not.toBe("ok");
    }
    const ttl = Buffer.from(ip);
    ttl[8] = 1;
    expect(parseIpv4(ttl, { verifyChecksum: false }).ttl).toBe(1);
  });

  it("only ever throws WireError on random input", () => {
    for (const b of randomBuffers(32, 1000, 64)) {
      parseOrReason(parseIpv4, b);
      // Mostly plausible headers: version 4, IHL 5, a total length that fits.
      if (b.length >= 20) {
        b[0] = 0x45;
        b.writeUInt16BE(b.length - (b[1]! % 4), 2);
        parseOrReason((x) => parseIpv4(x, { verifyChecksum: false }), b);
      }
    }
  });
});

describe("emitIpv4Header", () => {
  it.each([
    ["UDP (DF)", udpRequest],
    ["echo reply (no DF)", icmpEchoReply],
    ["port unreachable (tos 0xc0)", icmpPortUnreachable],
    ["SYN-ACK (id 0)", tcpSynAck],
  ])("rebuilds the captured %s header byte for byte", (_n, hexFrame) => {
    const ip = ipv4BytesOf(hexFrame);
    const p = parseIpv4(ip);
    const out = Buffer.alloc(IPV4_HEADER_LEN + 2, 0xaa);
    const written = emitIpv4Header(out, 1, {
      src: p.src,
      dst: p.dst,
      protocol: p.protocol,
      payloadLength: p.payload.length,
      ttl: p.ttl,
      id: p.id,
      tos: p.tos,
      dontFragment: p.dontFragment,
    });
    expect(written).toBe(IPV4_HEADER_LEN);
    expect(out.subarray(1, 1 + IPV4_HEADER_LEN).equals(ip.subarray(0, IPV4_HEADER_LEN))).toBe(true);
    expect([out[0], out[IPV4_HEADER_LEN + 1]]).toEqual([0xaa, 0xaa]);
  });

  it("defaults to ttl 64, id 0, tos 0 and DF", () => {
    const out = Buffer.alloc(IPV4_HEADER_LEN + 4);
    emitIpv4Header(out, 0, { src: A, dst: B, protocol: IPPROTO_UDP, payloadLength: 4 });
    expect(parseIpv4(out)).toMatchObject({ ttl: 64, id: 0, tos: 0, dontFragment: true, totalLength: 24 });
  });
});

describe("formatIpv4", () => {
  it("prints addresses, protocol and fragment state", () => {
    expect(formatIpv4(parseIpv4(ipv4BytesOf(icmpEchoRequest)))).toBe(
      "IPv4 10.99.0.1 > 10.99.0.2 proto=1 ttl=64 id=17636 len=60",
    );
    expect(formatIpv4(parseIpv4(ipv4BytesOf(icmpFragment1)))).toBe(
      "IPv4 10.99.0.1 > 10.99.0.2 proto=1 ttl=64 id=18031 len=1500 frag=1480+",
    );
    expect(formatIpv4(parseIpv4(ipv4BytesOf(icmpFragment2)))).toMatch(/ frag=2960$/);
  });
});

describe("emitIpv4Header fragments", () => {
  it("writes the fragment offset and MF flag under a valid header checksum", () => {
    const buf = Buffer.alloc(20 + 8);
    emitIpv4Header(buf, 0, {
      src: 0x0a000001,
      dst: 0x0a000002,
      protocol: 17,
      payloadLength: 8,
      id: 77,
      dontFragment: false,
      fragmentOffset: 1480,
      moreFragments: true,
    });
    const p = parseIpv4(buf);
    expect(p.fragmentOffset).toBe(1480);
    expect(p.moreFragments).toBe(true);
    expect(p.dontFragment).toBe(false);
    expect(p.id).toBe(77);
    expect(checksum(buf, 0, 20)).toBe(0);
  });
});
