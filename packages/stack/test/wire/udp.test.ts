import { describe, expect, it } from "vitest";
import { WireError } from "../../src/errors.js";
import { IPPROTO_UDP } from "../../src/wire/ipv4.js";
import { emitUdp, formatUdp, parseUdp, UDP_HEADER_LEN } from "../../src/wire/udp.js";
import { udpNoChecksum, udpReply, udpRequest, udpToClosedPort } from "../fixtures/frames.js";
import { ipv4Of } from "./decode.js";
import { mutations, parseOrReason, randomBuffers, truncations } from "./malformed.js";

const checksummed = [
  ["request", udpRequest, 40000, 5353, "ping\n"],
  ["reply", udpReply, 5353, 40000, "pong\n"],
  ["datagram to a closed port", udpToClosedPort, 40001, 9, "hello\n"],
] as const;

describe("parseUdp", () => {
  it.each(checksummed)("parses and verifies the captured %s", (_n, hexFrame, srcPort, dstPort, text) => {
    const ip = ipv4Of(hexFrame);
    expect(ip.protocol).toBe(IPPROTO_UDP);
    expect(ip.payload.readUInt16BE(6)).not.toBe(0);
    const d = parseUdp(ip.payload, ip.src, ip.dst);
    expect(d).toMatchObject({ srcPort, dstPort });
    expect(d.payload.toString()).toBe(text);
    expect(d.payload.buffer).toBe(ip.payload.buffer);
  });

  it("accepts the captured SO_NO_CHECK datagram, whose checksum field is 0", () => {
    const ip = ipv4Of(udpNoChecksum);
    expect(ip.payload.readUInt16BE(6)).toBe(0);
    const d = parseUdp(ip.payload, ip.src, ip.dst);
    expect(d).toMatchObject({ srcPort: 40004, dstPort: 7 });
    expect(d.payload.toString()).toBe("no checksum\n");
  });

  it("rejects a captured datagram given the wrong addresses for the pseudo-header", () => {
    const ip = ipv4Of(udpRequest);
    expect(parseOrReason((b) => parseUdp(b, ip.dst, ip.src + 1), ip.payload)).toBe("checksum");
    expect(parseOrReason((b) => parseUdp(b, ip.dst + 1, ip.src, { verifyChecksum: false }), ip.payload)).toBe(
      "ok",
    );
  });

  it("bounds the payload by the UDP length, not by what follows it", () => {
    const ip = ipv4Of(udpRequest);
    const longer = Buffer.concat([ip.payload, Buffer.from([1, 2, 3])]);
    expect(parseUdp(longer, ip.src, ip.dst).payload.toString()).toBe("ping\n");
  });

  it.each([0, 7, 14])("rejects a length field of %i as bad-length", (length) => {
    const ip = ipv4Of(udpRequest);
    const b = Buffer.from(ip.payload);
    b.writeUInt16BE(length, 4);
    expect(parseOrReason((x) => parseUdp(x, ip.src, ip.dst), b)).toBe("bad-length");
  });

  it("throws truncated below 8 bytes and bad-length for every longer cut", () => {
    const ip = ipv4Of(udpToClosedPort);
    const reasons = truncations((b) => parseUdp(b, ip.src, ip.dst), ip.payload);
    expect(reasons).toEqual([
      ...Array(UDP_HEADER_LEN).fill("truncated"),
      ...Array(ip.payload.length - UDP_HEADER_LEN).fill("bad-length"),
    ]);
  });

  it("rejects every one-byte change of a captured datagram", () => {
    const ip = ipv4Of(udpRequest);
    for (const b of mutations(7, 300, ip.payload)) {
      expect(["checksum", "bad-length"]).toContain(parseOrReason((x) => parseUdp(x, ip.src, ip.dst), b));
    }
  });

  it("only ever throws WireError on random input", () => {
    for (const b of randomBuffers(8, 1000, 40)) {
      parseOrReason((x) => parseUdp(x, 0x0a630001, 0x0a630002), b);
      parseOrReason((x) => parseUdp(x, 0, 0, { verifyChecksum: false }), b);
    }
  });
});

describe("emitUdp", () => {
  it.each(checksummed)("round-trips the captured %s byte for byte", (_n, hexFrame) => {
    const ip = ipv4Of(hexFrame);
    const d = parseUdp(ip.payload, ip.src, ip.dst);
    const at = 3;
    const out = Buffer.alloc(at + ip.payload.length + 2, 0xaa);
    d.payload.copy(out, at + UDP_HEADER_LEN); // the payload is written first, as the stack does
    expect(emitUdp(out, at, ip.src, ip.dst, d.srcPort, d.dstPort, d.payload.length)).toBe(ip.payload.length);
    expect(out.subarray(at, at + ip.payload.length).equals(ip.payload)).toBe(true);
    expect([...out.subarray(0, at), ...out.subarray(at + ip.payload.length)]).toEqual([
      0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
    ]);
  });

  it("always fills a checksum, even for the datagram captured without one", () => {
    const ip = ipv4Of(udpNoChecksum);
    const out = Buffer.from(ip.payload);
    emitUdp(out, 0, ip.src, ip.dst, 40004, 7, ip.payload.length - UDP_HEADER_LEN);
    expect(out.readUInt16BE(6)).not.toBe(0);
    expect(out.subarray(0, 6).equals(ip.payload.subarray(0, 6))).toBe(true);
    expect(parseUdp(out, ip.src, ip.dst).payload.toString()).toBe("no checksum\n");
  });

  it("sends a computed checksum of 0 as 0xffff, which verifies", () => {
    const src = 0x0a630001;
    const dst = 0x0a630002;
    const out = Buffer.alloc(UDP_HEADER_LEN + 2);
    emitUdp(out, 0, src, dst, 1000, 2000, 2);
    // Adding the first checksum as a payload word makes the sum 0xffff, so the next checksum is 0.
    out.writeUInt16BE(out.readUInt16BE(6), UDP_HEADER_LEN);
    emitUdp(out, 0, src, dst, 1000, 2000, 2);
    expect(out.readUInt16BE(6)).toBe(0xffff);
    expect(parseUdp(out, src, dst)).toMatchObject({ srcPort: 1000, dstPort: 2000 });
  });

  it("refuses a payload that does not fit the 16-bit length", () => {
    const out = Buffer.alloc(0x10000);
    expect(() => emitUdp(out, 0, 1, 2, 3, 4, 0xffff - UDP_HEADER_LEN)).not.toThrow();
    expect(() => emitUdp(out, 0, 1, 2, 3, 4, 0xffff - UDP_HEADER_LEN + 1)).toThrow(WireError);
  });
});

describe("formatUdp", () => {
  it("prints ports and payload length", () => {
    const ip = ipv4Of(udpRequest);
    expect(formatUdp(parseUdp(ip.payload, ip.src, ip.dst))).toBe("UDP 40000 > 5353 len=5");
  });
});
