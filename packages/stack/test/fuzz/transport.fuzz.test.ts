/** UDP and TCP (with options): hostile bytes give a WireError or in-bounds views; emitted segments parse back. */
import { fuzz } from "@desktopd/fuzz";
import { describe, expect, it } from "vitest";
import {
  emitTcp,
  formatTcp,
  parseTcp,
  TCP_HEADER_LEN,
  TCP_MAX_HEADER_LEN,
  type TcpEmitFields,
  tcpHeaderLength,
} from "../../src/wire/tcp.js";
import { emitUdp, formatUdp, parseUdp, UDP_HEADER_LEN } from "../../src/wire/udp.js";
import { parseOrReason } from "../wire/malformed.js";
import { bytes, fc, mutated, u8, u16, u32 } from "./arbitraries.js";

interface Datagram {
  srcIp: number;
  dstIp: number;
  srcPort: number;
  dstPort: number;
  payload: Buffer;
}

describe("udp", () => {
  const datagram: fc.Arbitrary<Datagram> = fc.record({
    srcIp: u32,
    dstIp: u32,
    srcPort: u16,
    dstPort: u16,
    payload: bytes(64),
  });
  const emitted = (d: Datagram) => {
    const buf = Buffer.alloc(UDP_HEADER_LEN + d.payload.length);
    d.payload.copy(buf, UDP_HEADER_LEN);
    emitUdp(buf, 0, d.srcIp, d.dstIp, d.srcPort, d.dstPort, d.payload.length);
    return buf;
  };

  it("parses arbitrary bytes or throws WireError", () => {
    const input = fc.record({
      b: fc.oneof(bytes(40), mutated(datagram.map(emitted))),
      src: u32,
      dst: u32,
      verifyChecksum: fc.boolean(),
    });
    fuzz(
      "udp",
      "arbitrary bytes",
      input,
      ({ b, src, dst, verifyChecksum }) => {
        const parse = (x: Buffer) => parseUdp(x, src, dst, { verifyChecksum });
        if (parseOrReason(parse, b) === "ok") formatUdp(parse(b));
      },
      2000,
    );
  });

  it("parses back what it emits, with its checksum, ignoring bytes past its length", () => {
    fuzz(
      "udp",
      "round trip",
      fc.tuple(datagram, bytes(8)),
      ([d, padding]) => {
        const buf = Buffer.concat([emitted(d), padding]);
        expect(buf.readUInt16BE(6)).not.toBe(0); // 0 would mean "no checksum"
        expect(parseUdp(buf, d.srcIp, d.dstIp)).toEqual({
          srcPort: d.srcPort,
          dstPort: d.dstPort,
          payload: d.payload,
        });
      },
      500,
    );
  });
});

const sackBlock = fc.tuple(u32, u32);
const tcpFields: fc.Arbitrary<TcpEmitFields> = fc.record(
  {
    srcPort: u16,
    dstPort: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    mss: u16,
    windowScale: fc.integer({ min: 0, max: 14 }),
    sackPermitted: fc.boolean(),
    sack: fc.array(sackBlock, { maxLength: 4 }),
    timestamp: fc.record({ value: u32, echo: u32 }),
  },
  { requiredKeys: ["srcPort", "dstPort", "seq", "ack", "flags", "window"] },
);

/** Raw option bytes: well-formed TLVs of the kinds parsed, NOPs, END, and garbage. */
const optionBytes = fc
  .array(
    fc.oneof(
      fc.constant(Buffer.of(1)),
      fc.constant(Buffer.of(0)),
      fc
        .tuple(fc.constantFrom(2, 3, 4, 5, 8, 30), bytes(12))
        .map(([k, v]) => Buffer.from([k, v.length + 2, ...v])),
      bytes(4),
    ),
    { maxLength: 8 },
  )
  .map((parts) => Buffer.concat(parts).subarray(0, TCP_MAX_HEADER_LEN - TCP_HEADER_LEN));

/** A header with an arbitrary data offset and option area: the option parser's input. */
const tcpWithOptions = fc
  .tuple(bytes(20, 20), optionBytes, fc.integer({ min: 0, max: 15 }), bytes(16))
  .map(([header, options, offsetDelta, payload]) => {
    const padded = Buffer.alloc(Math.ceil(options.length / 4) * 4);
    options.copy(padded);
    const b = Buffer.concat([header, padded, payload]);
    // Usually the true header length, sometimes any data offset at all.
    const words = offsetDelta < 12 ? (20 + padded.length) / 4 : offsetDelta;
    b[12] = (words << 4) | (b[12]! & 0x0f);
    return b;
  });

describe("tcp", () => {
  it("parses arbitrary bytes or throws WireError", () => {
    const input = fc.record({
      b: fc.oneof(bytes(80), tcpWithOptions, mutated(tcpWithOptions)),
      src: u32,
      dst: u32,
      verifyChecksum: fc.boolean(),
    });
    fuzz(
      "tcp",
      "arbitrary bytes",
      input,
      ({ b, src, dst, verifyChecksum }) => {
        const parse = (x: Buffer) => parseTcp(x, src, dst, { verifyChecksum });
        if (parseOrReason(parse, b) === "ok") formatTcp(parse(b));
      },
      3000,
    );
  });

  it("parses back what it emits, options included, SACK blocks cut to what fits in 40 bytes", () => {
    fuzz(
      "tcp",
      "round trip",
      fc.record({ f: tcpFields, payload: bytes(64), src: u32, dst: u32 }),
      ({ f, payload, src, dst }) => {
        const hlen = tcpHeaderLength(f);
        const buf = Buffer.alloc(hlen + payload.length);
        payload.copy(buf, hlen);
        expect(emitTcp(buf, 0, src, dst, f, payload.length)).toBe(buf.length);
        const s = parseTcp(buf, src, dst);
        const others =
          TCP_HEADER_LEN +
          (f.mss === undefined ? 0 : 4) +
          (f.windowScale === undefined ? 0 : 4) +
          (f.sackPermitted ? 4 : 0) +
          (f.timestamp ? 12 : 0);
        const blocks = Math.max(0, Math.min(f.sack?.length ?? 0, 3, Math.floor((60 - others - 4) / 8)));
        expect(s.headerLength).toBe(others + (blocks > 0 ? 4 + 8 * blocks : 0));
        expect(hlen).toBe(s.headerLength);
        expect(s).toEqual({
          srcPort: f.srcPort,
          dstPort: f.dstPort,
          seq: f.seq,
          ack: f.ack,
          flags: f.flags,
          window: f.window,
          urgent: 0,
          headerLength: s.headerLength,
          mss: f.mss,
          windowScale: f.windowScale,
          sackPermitted: f.sackPermitted === true,
          sack: blocks > 0 ? f.sack!.slice(0, blocks) : undefined,
          timestamp: f.timestamp,
          payload,
        });
      },
      1000,
    );
  });
});
