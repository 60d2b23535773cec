import { describe, expect, it } from "vitest";
import {
  emitIcmpv4,
  formatIcmpv4,
  ICMP_CODE_FRAG_NEEDED,
  ICMP_CODE_PORT_UNREACHABLE,
  ICMP_DEST_UNREACHABLE,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_HEADER_LEN,
  ICMP_TIME_EXCEEDED,
  type IcmpPacket,
  parseIcmpv4,
} from "../../src/wire/icmpv4.js";
import { IPPROTO_ICMP, IPPROTO_UDP, parseIpv4 } from "../../src/wire/ipv4.js";
import { parseUdp } from "../../src/wire/udp.js";
import { icmpUnreachableLarge } from "../fixtures/fragments.js";
import { icmpEchoReply, icmpEchoRequest, icmpPortUnreachable, udpToClosedPort } from "../fixtures/frames.js";
import { ipv4BytesOf, ipv4Of } from "./decode.js";
import { mutations, parseOrReason, randomBuffers, truncations } from "./malformed.js";

const captured = [
  ["echo request", icmpEchoRequest],
  ["echo reply", icmpEchoReply],
  ["port unreachable", icmpPortUnreachable],
  ["port unreachable quoting 528 bytes", icmpUnreachableLarge],
] as const;

function icmpOf(hexFrame: string): IcmpPacket {
  const ip = ipv4Of(hexFrame);
  expect(ip.protocol).toBe(IPPROTO_ICMP);
  return parseIcmpv4(ip.payload);
}

describe("parseIcmpv4", () => {
  it("parses a captured echo request and reply", () => {
    const request = icmpOf(icmpEchoRequest);
    expect(request).toMatchObject({ type: ICMP_ECHO_REQUEST, code: 0, rest: (5858 << 16) | 0 });
    expect(request.payload.length).toBe(32);
    const reply = icmpOf(icmpEchoReply);
    expect(reply).toMatchObject({ type: ICMP_ECHO_REPLY, code: 0, rest: request.rest });
    expect(reply.payload.equals(request.payload)).toBe(true);
  });

  it("parses a captured port unreachable that quotes the offending datagram", () => {
    const icmp = icmpOf(icmpPortUnreachable);
    expect(icmp).toMatchObject({ type: ICMP_DEST_UNREACHABLE, code: ICMP_CODE_PORT_UNREACHABLE, rest: 0 });
    // Linux quotes the whole (small) datagram: IPv4 header, UDP header and "hello\n".
    const offending = ipv4Of(udpToClosedPort);
    expect(icmp.payload.equals(ipv4BytesOf(udpToClosedPort))).toBe(true);
    const quoted = parseIpv4(icmp.payload);
    expect(quoted).toMatchObject({
      src: offending.src,
      dst: offending.dst,
      protocol: IPPROTO_UDP,
      id: offending.id,
    });
    const udp = parseUdp(quoted.payload, quoted.src, quoted.dst);
    expect(udp).toMatchObject({ srcPort: 40001, dstPort: 9 });
    expect(udp.payload.toString()).toBe("hello\n");
  });

  it("parses an unreachable whose quote is cut short: the quoted header claims more than is there", () => {
    const icmp = icmpOf(icmpUnreachableLarge);
    expect(icmp).toMatchObject({ type: ICMP_DEST_UNREACHABLE, code: ICMP_CODE_PORT_UNREACHABLE });
    expect(icmp.payload.length).toBe(576 - 20 - ICMP_HEADER_LEN);
    // The quoted total length (1228) exceeds the quote, so a strict IPv4 parse refuses it;
    // the ports are still readable from the first 8 bytes after the quoted header.
    expect(icmp.payload.readUInt16BE(2)).toBe(1228);
    expect(parseOrReason(parseIpv4, icmp.payload)).toBe("bad-total-length");
    expect([icmp.payload.readUInt16BE(20), icmp.payload.readUInt16BE(22)]).toEqual([40005, 7]);
  });

  it("returns a payload view into the received buffer", () => {
    const ip = ipv4Of(icmpEchoRequest);
    const icmp = parseIcmpv4(ip.payload);
    expect(icmp.payload.buffer).toBe(ip.payload.buffer);
    expect(icmp.payload.byteOffset).toBe(ip.payload.byteOffset + ICMP_HEADER_LEN);
  });

  it.each(captured)(
    "verifies the checksum of the captured %s and rejects any one changed byte",
    (_n, hexFrame) => {
      const payload = ipv4Of(hexFrame).payload;
      expect(parseOrReason(parseIcmpv4, payload)).toBe("ok");
      for (const b of mutations(3, 200, payload)) expect(parseOrReason(parseIcmpv4, b)).toBe("checksum");
      for (const b of mutations(4, 200, payload)) {
        expect(parseOrReason((x) => parseIcmpv4(x, { verifyChecksum: false }), b)).toBe("ok");
      }
    },
  );

  it("throws truncated below 8 bytes, and checksum for cuts that drop non-zero bytes", () => {
    const payload = ipv4Of(icmpPortUnreachable).payload;
    const reasons = truncations(parseIcmpv4, payload);
    expect(reasons.slice(0, ICMP_HEADER_LEN)).toEqual(Array(ICMP_HEADER_LEN).fill("truncated"));
    for (let n = ICMP_HEADER_LEN; n < payload.length; n++) {
      const droppedOnlyZeros = payload.subarray(n).every((b) => b === 0);
      expect(reasons[n], `cut at ${n}`).toBe(droppedOnlyZeros ? "ok" : "checksum");
    }
    const unchecked = truncations((x) => parseIcmpv4(x, { verifyChecksum: false }), payload);
    expect(unchecked.slice(ICMP_HEADER_LEN)).toEqual(Array(payload.length - ICMP_HEADER_LEN).fill("ok"));
  });

  it("only ever throws WireError on random input", () => {
    for (const b of randomBuffers(5, 1000, 64)) parseOrReason(parseIcmpv4, b);
    for (const b of randomBuffers(6, 300, 64))
      parseOrReason((x) => parseIcmpv4(x, { verifyChecksum: false }), b);
  });
});

describe("emitIcmpv4", () => {
  it.each(captured)("round-trips the captured %s byte for byte", (_n, hexFrame) => {
    const payload = ipv4Of(hexFrame).payload;
    const out = Buffer.alloc(payload.length + 3, 0xaa);
    expect(emitIcmpv4(out, 1, parseIcmpv4(payload))).toBe(payload.length);
    expect(out.subarray(1, 1 + payload.length).equals(payload)).toBe(true);
    expect([out[0], out[payload.length + 1], out[payload.length + 2]]).toEqual([0xaa, 0xaa, 0xaa]);
  });

  it("turns the captured request into the captured reply in place", () => {
    const buf = Buffer.from(ipv4Of(icmpEchoRequest).payload);
    const request = parseIcmpv4(buf);
    emitIcmpv4(buf, 0, { ...request, type: ICMP_ECHO_REPLY });
    expect(buf.equals(ipv4Of(icmpEchoReply).payload)).toBe(true);
  });

  it("builds the port unreachable Linux sent from the datagram it refused", () => {
    const quote = ipv4BytesOf(udpToClosedPort);
    const out = Buffer.alloc(ICMP_HEADER_LEN + quote.length);
    emitIcmpv4(out, 0, {
      type: ICMP_DEST_UNREACHABLE,
      code: ICMP_CODE_PORT_UNREACHABLE,
      rest: 0,
      payload: quote,
    });
    expect(out.equals(ipv4Of(icmpPortUnreachable).payload)).toBe(true);
  });

  it("fills a checksum that verifies for odd lengths and a frag-needed MTU", () => {
    const out = Buffer.alloc(ICMP_HEADER_LEN + 7);
    const p = {
      type: ICMP_DEST_UNREACHABLE,
      code: ICMP_CODE_FRAG_NEEDED,
      rest: 1400,
      payload: Buffer.from("abcdefg"),
    };
    expect(emitIcmpv4(out, 0, p)).toBe(15);
    expect(parseIcmpv4(out)).toEqual(p);
  });
});

describe("formatIcmpv4", () => {
  it("prints echo, unreachable, time exceeded and unknown types", () => {
    expect(formatIcmpv4(icmpOf(icmpEchoRequest))).toBe("ICMP echo request id=5858 seq=0 len=32");
    expect(formatIcmpv4(icmpOf(icmpEchoReply))).toBe("ICMP echo reply id=5858 seq=0 len=32");
    expect(formatIcmpv4(icmpOf(icmpPortUnreachable))).toBe("ICMP unreachable port-unreachable len=34");
    const none = Buffer.alloc(0);
    expect(
      formatIcmpv4({ type: ICMP_DEST_UNREACHABLE, code: ICMP_CODE_FRAG_NEEDED, rest: 1400, payload: none }),
    ).toBe("ICMP unreachable frag-needed mtu=1400 len=0");
    expect(formatIcmpv4({ type: ICMP_TIME_EXCEEDED, code: 0, rest: 0, payload: none })).toBe(
      "ICMP time-exceeded ttl len=0",
    );
    expect(formatIcmpv4({ type: 13, code: 0, rest: 0, payload: none })).toBe("ICMP type=13 code=0 len=0");
  });
});
