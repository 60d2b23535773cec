/**
 * Checksum completion and TCP segmentation done in JavaScript for links without offload. Every
 * result is checked with the stack's own parsers, checksums verified.
 */
import { describe, expect, it } from "vitest";
import { TCP_FRAME_L4_OFFSET, tcpFrame } from "../../src/iface/frames.js";
import { completeChecksum, segmentTcpFrame } from "../../src/switch/software-offload.js";
import { finish, pseudoHeaderSum, sum16 } from "../../src/wire/checksum.js";
import { ETHERTYPE_IPV4, parseEthernet } from "../../src/wire/ethernet.js";
import { IPPROTO_UDP, parseIpv4 } from "../../src/wire/ipv4.js";
import { addressSum6, parseIpv6 } from "../../src/wire/ipv6.js";
import {
  parseTcp,
  parseTcpWith,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_SYN,
  type TcpEmitFields,
} from "../../src/wire/tcp.js";
import { parseUdp } from "../../src/wire/udp.js";
import { arpRequest, icmpEchoRequest, ipv6RouterSolicitation, udpRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { tcpData } from "../fixtures/tcp.js";

const TCP_CWR = 0x80;
const TCP_ECE = 0x40;
const route = {
  srcMac: Buffer.from("5a94efe40cdd", "hex"),
  dstMac: Buffer.from("020000000003", "hex"),
  srcIp: 0xc0a84101, // 192.168.65.1
  dstIp: 0xc0a84103, // 192.168.65.3
};

function pattern(length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 131 + (i >> 8)) & 0xff;
  return b;
}

/** Rewrites the IP ID of a frame built by tcpFrame (L3 at 14) and fixes the header checksum. */
function setIpId(frame: Buffer, id: number, l3 = 14): void {
  frame.writeUInt16BE(id, l3 + 4);
  frame.writeUInt16BE(0, l3 + 10);
  frame.writeUInt16BE(finish(sum16(frame, l3, l3 + 20)), l3 + 10);
}

/** Parses a segment with every checksum verified. */
function parse(frame: Buffer) {
  const eth = parseEthernet(frame);
  expect(eth.ethertype).toBe(ETHERTYPE_IPV4);
  const ip = parseIpv4(eth.payload, { verifyChecksum: true });
  expect(ip.totalLength).toBe(eth.payload.length); // no padding, no stray bytes
  const tcp = parseTcp(ip.payload, ip.src, ip.dst, { verifyChecksum: true });
  return { eth, ip, tcp };
}

describe("segmentTcpFrame", () => {
  // The largest super-frame: IP total length 65535 with a timestamp option (32-byte TCP header).
  const fields: TcpEmitFields = {
    srcPort: 443,
    dstPort: 51000,
    seq: 0xffff_8000, // wraps during the burst
    ack: 0x1234_5678,
    flags: TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR | TCP_ECE,
    window: 501,
    timestamp: { value: 1_000_000, echo: 2_000_000 },
  };
  const payload = pattern(65_535 - 20 - 32);
  const GSO = 1448;

  function superFrame() {
    const frame = tcpFrame(route, fields, payload, true);
    setIpId(frame, 0xfffe); // wraps too
    return frame;
  }

  it("cuts a 64 KiB super-frame with a partial checksum into MSS frames that verify", () => {
    const frame = superFrame();
    expect(frame.length).toBe(14 + 65_535);
    const before = Buffer.from(frame);
    const segments = segmentTcpFrame(frame, GSO);
    expect(segments).toHaveLength(Math.ceil(payload.length / GSO));
    expect(segments).toHaveLength(46);
    // The input is left alone: a flooded frame is shared with other links.
    expect(frame.equals(before)).toBe(true);

    const parsed = segments.map(parse);
    for (const [i, { eth, ip, tcp }] of parsed.entries()) {
      const last = i === segments.length - 1;
      const size = last ? payload.length - GSO * (segments.length - 1) : GSO;
      expect(tcp.payload.length).toBe(size);
      expect(ip.totalLength).toBe(20 + 32 + size);
      expect(ip.id).toBe((0xfffe + i) & 0xffff);
      expect(ip.src).toBe(route.srcIp);
      expect(ip.dst).toBe(route.dstIp);
      expect(ip.dontFragment).toBe(true);
      expect(eth.src.equals(route.srcMac) && eth.dst.equals(route.dstMac)).toBe(true);
      expect(tcp.seq).toBe((fields.seq + i * GSO) >>> 0);
      expect(tcp.ack).toBe(fields.ack);
      expect(tcp.window).toBe(fields.window);
      expect(tcp.timestamp).toEqual(fields.timestamp);
      expect(tcp.srcPort).toBe(443);
      expect(tcp.dstPort).toBe(51000);
      // ACK and ECE everywhere, CWR on the first only, FIN and PSH on the last only.
      expect(tcp.flags & (TCP_ACK | TCP_ECE)).toBe(TCP_ACK | TCP_ECE);
      expect(Boolean(tcp.flags & TCP_CWR)).toBe(i === 0);
      expect(Boolean(tcp.flags & TCP_FIN)).toBe(last);
      expect(Boolean(tcp.flags & TCP_PSH)).toBe(last);
    }
    expect(parsed.map((p) => p.ip.id)).toContain(0); // the ID wrapped
    expect(parsed.some((p) => p.tcp.seq < fields.seq)).toBe(true); // so did the sequence number
    expect(Buffer.concat(parsed.map((p) => p.tcp.payload)).equals(payload)).toBe(true);
  });

  it("cuts a captured Linux segment the same way", () => {
    // PSH-ACK with "hello\n", complete checksum: cut into 4 + 2 bytes.
    const frame = bytes(tcpData);
    const original = parse(frame);
    const segments = segmentTcpFrame(frame, 4);
    expect(segments).toHaveLength(2);
    const [a, b] = segments.map(parse) as [ReturnType<typeof parse>, ReturnType<typeof parse>];
    expect(a.tcp.payload.toString()).toBe("hell");
    expect(b.tcp.payload.toString()).toBe("o\n");
    expect(a.tcp.seq).toBe(original.tcp.seq);
    expect(b.tcp.seq).toBe(original.tcp.seq + 4);
    expect(a.tcp.flags).toBe(TCP_ACK);
    expect(b.tcp.flags).toBe(TCP_ACK | TCP_PSH);
    expect([a.ip.id, b.ip.id]).toEqual([original.ip.id, original.ip.id + 1]);
    expect(a.tcp.timestamp).toEqual(original.tcp.timestamp);
  });

  it("keeps a VLAN tag on every segment", () => {
    const plain = tcpFrame(route, { ...fields, timestamp: undefined }, pattern(5000), true);
    const tagged = Buffer.concat([plain.subarray(0, 12), Buffer.from("81000064", "hex"), plain.subarray(12)]);
    const segments = segmentTcpFrame(tagged, 1460);
    expect(segments).toHaveLength(4);
    const got: Buffer[] = [];
    for (const s of segments) {
      const eth = parseEthernet(s);
      expect(eth.vlan).toBe(100);
      const ip = parseIpv4(eth.payload);
      got.push(parseTcp(ip.payload, ip.src, ip.dst, { verifyChecksum: true }).payload);
    }
    expect(Buffer.concat(got).equals(pattern(5000))).toBe(true);
  });

  it("returns one frame with its checksum completed when the payload fits, without Ethernet padding", () => {
    const frame = tcpFrame(route, { ...fields, flags: TCP_ACK | TCP_PSH }, pattern(1000), true);
    const [one, ...rest] = segmentTcpFrame(frame, GSO);
    expect(rest).toEqual([]);
    expect(one).not.toBe(frame);
    expect(parse(one!).tcp.payload.equals(pattern(1000))).toBe(true);
    expect(parse(one!).tcp.flags).toBe(TCP_ACK | TCP_PSH);

    // A bare ACK padded to the 60-byte Ethernet minimum: the padding is not TCP payload.
    const ack = tcpFrame(route, { ...fields, flags: TCP_ACK, timestamp: undefined }, undefined, true);
    expect(ack.length).toBe(54);
    const padded = Buffer.concat([ack, Buffer.alloc(6, 0xaa)]);
    const [cut] = segmentTcpFrame(padded, GSO);
    expect(cut!.length).toBe(54);
    expect(parse(cut!).tcp.payload.length).toBe(0);
  });

  it("cuts exactly at a multiple of the segment size", () => {
    const frame = tcpFrame(route, { ...fields, timestamp: undefined }, pattern(3 * 1460), true);
    const segments = segmentTcpFrame(frame, 1460);
    expect(segments.map((s) => parse(s).tcp.payload.length)).toEqual([1460, 1460, 1460]);
    expect(segments.map((s) => parse(s).tcp.flags & TCP_FIN)).toEqual([0, 0, TCP_FIN]);
  });

  it.each([
    ["ARP", arpRequest],
    ["ICMP", icmpEchoRequest],
    ["UDP", udpRequest],
    ["IPv6 router solicitation", ipv6RouterSolicitation],
  ])("returns a %s frame whole and untouched", (_, text) => {
    const frame = bytes(text);
    const [only, ...rest] = segmentTcpFrame(frame, 8);
    expect(rest).toEqual([]);
    expect(only).toBe(frame);
    expect(frame.toString("hex")).toBe(text);
  });

  it("returns a frame that only looks like TCP/IPv4 at byte 23 whole, and cuts TCP/IPv6 as IPv6", () => {
    // An ARP from a MAC whose second byte is 6 (IPPROTO_TCP), and an IPv6 TCP packet from
    // 2a06:98c0::1, where the byte at the IPv4 protocol offset is 0x06 too.
    const arp = bytes(arpRequest);
    arp[7] = 0x06;
    arp[23] = 0x06;
    const ipv6 = Buffer.alloc(14 + 40 + 20 + 3000);
    Buffer.from("020000000003", "hex").copy(ipv6, 0);
    Buffer.from("5a94efe40cdd", "hex").copy(ipv6, 6);
    ipv6.writeUInt16BE(0x86dd, 12);
    ipv6[14] = 0x60;
    ipv6.writeUInt16BE(20 + 3000, 18);
    ipv6[20] = 6; // next header: TCP
    ipv6[21] = 64;
    Buffer.from("2a0698c0000000000000000000000001", "hex").copy(ipv6, 22);
    Buffer.from("fd000000000000000000000000000003", "hex").copy(ipv6, 38);
    ipv6[14 + 40 + 12] = 0x50;
    ipv6.writeUInt32BE(1000, 14 + 40 + 4);
    ipv6[14 + 40 + 13] = 0x18; // PSH ACK
    for (let i = 0; i < 3000; i++) ipv6[14 + 60 + i] = i & 0xff;
    expect(ipv6[14 + 9]).toBe(6);
    const before = Buffer.from(arp);
    const whole = segmentTcpFrame(arp, 1000);
    expect(whole).toHaveLength(1);
    expect(whole[0]!.equals(before)).toBe(true);
    const segments = segmentTcpFrame(ipv6, 1000);
    expect(segments).toHaveLength(3);
    segments.forEach((seg, i) => {
      const p = parseIpv6(seg.subarray(14));
      expect(p.payload.length).toBe(20 + 1000);
      // The checksum verifies over the IPv6 pseudo-header; PSH only on the last.
      const tcp = parseTcpWith(p.payload, addressSum6(p.src, p.dst));
      expect(tcp.seq).toBe(1000 + i * 1000);
      expect(tcp.flags & 0x08).toBe(i === 2 ? 0x08 : 0);
      expect(tcp.payload.equals(ipv6.subarray(14 + 60 + i * 1000, 14 + 60 + (i + 1) * 1000))).toBe(true);
    });
  });

  it("returns a frame whole for a segment size of 0", () => {
    const frame = tcpFrame(route, fields, pattern(3000), true);
    expect(segmentTcpFrame(frame, 0)).toEqual([frame]);
  });

  it("leaves SYN on a SYN segment that fits", () => {
    const syn = tcpFrame(
      route,
      { ...fields, flags: TCP_SYN, mss: 1460, timestamp: undefined },
      undefined,
      true,
    );
    const [out] = segmentTcpFrame(syn, 1448);
    expect(parse(out!).tcp.flags).toBe(TCP_SYN);
    expect(parse(out!).tcp.mss).toBe(1460);
  });
});

describe("completeChecksum", () => {
  it("completes a partial TCP checksum to what a full one would be", () => {
    const data = pattern(3001);
    const full = tcpFrame(route, { ...fields(), seq: 7 }, data);
    const partial = tcpFrame(route, { ...fields(), seq: 7 }, data, true);
    const at = TCP_FRAME_L4_OFFSET + 16;
    expect(partial.readUInt16BE(at)).not.toBe(full.readUInt16BE(at));
    expect(() => parse(partial)).toThrow(/checksum/);
    completeChecksum(partial, TCP_FRAME_L4_OFFSET, 16);
    expect(partial.readUInt16BE(at)).toBe(full.readUInt16BE(at));
    expect(parse(partial).tcp.payload.equals(data)).toBe(true);
  });

  function fields(): TcpEmitFields {
    return { srcPort: 80, dstPort: 40000, seq: 1, ack: 2, flags: TCP_ACK, window: 512 };
  }

  /** A captured UDP frame as a guest kernel with checksum offload hands it over. */
  function udpPartial(frame: Buffer): Buffer {
    const partial = Buffer.from(frame);
    const ip = parseIpv4(partial.subarray(14));
    const udpLength = partial.readUInt16BE(34 + 4);
    const seed = ~finish(pseudoHeaderSum(ip.src, ip.dst, IPPROTO_UDP, udpLength)) & 0xffff;
    partial.writeUInt16BE(seed, 34 + 6);
    return partial;
  }

  it("completes a partial UDP checksum of a captured datagram to the one Linux computed", () => {
    const captured = bytes(udpRequest);
    const partial = udpPartial(captured);
    expect(partial.equals(captured)).toBe(false);
    completeChecksum(partial, 34, 6);
    expect(partial.equals(captured)).toBe(true);
    const ip = parseIpv4(partial.subarray(14));
    expect(parseUdp(ip.payload, ip.src, ip.dst, { verifyChecksum: true }).payload.toString()).toBe("ping\n");
  });

  it("writes a UDP checksum that computes to 0 as 0xffff", () => {
    // Two payload bytes chosen so that the datagram sums to 0xffff.
    const frame = Buffer.concat([bytes(udpRequest).subarray(0, 14 + 20 + 8), Buffer.alloc(2)]);
    frame.writeUInt16BE(20 + 8 + 2, 14 + 2);
    frame.writeUInt16BE(8 + 2, 34 + 4);
    setIpId(frame, 1);
    const ip = parseIpv4(frame.subarray(14));
    frame.writeUInt16BE(0, 34 + 6);
    const folded = 0xffff - finish(sum16(frame, 34, frame.length, pseudoHeaderSum(ip.src, ip.dst, 17, 10)));
    frame.writeUInt16BE(0xffff - folded, 42);
    expect(finish(sum16(frame, 34, frame.length, pseudoHeaderSum(ip.src, ip.dst, 17, 10)))).toBe(0);
    const partial = udpPartial(frame);
    completeChecksum(partial, 34, 6);
    expect(partial.readUInt16BE(40)).toBe(0xffff);
    const parsedIp = parseIpv4(partial.subarray(14));
    expect(() =>
      parseUdp(parsedIp.payload, parsedIp.src, parsedIp.dst, { verifyChecksum: true }),
    ).not.toThrow();
  });

  it("leaves a frame alone when the offsets lie outside it", () => {
    const frame = bytes(arpRequest);
    completeChecksum(frame, 100, 16);
    completeChecksum(frame, 30, 16);
    expect(frame.toString("hex")).toBe(arpRequest);
  });
});

describe("segmentTcpFrame on a guest's malformed super-frame", () => {
  it("returns a TCP header shorter than 20 bytes (data offset < 5) whole instead of throwing", () => {
    const frame = tcpFrame(
      route,
      { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_ACK, window: 1 },
      pattern(100),
    );
    const l4 = 14 + 20;
    frame[l4 + 12] = 0; // data offset 0
    expect(segmentTcpFrame(frame, 8)).toEqual([frame]);
  });
});
