import { describe, expect, it } from "vitest";
import { IPPROTO_TCP } from "../../src/wire/ipv4.js";
import {
  emitTcp,
  formatTcp,
  formatTcpFlags,
  parseTcp,
  TCP_ACK,
  TCP_FIN,
  TCP_HEADER_LEN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpEmitFields,
  type TcpSegment,
  tcpHeaderLength,
} from "../../src/wire/tcp.js";
import {
  tcpAck,
  tcpData,
  tcpDataAck,
  tcpFin,
  tcpFinAck,
  tcpReplyData,
  tcpRst,
  tcpSyn,
  tcpSynAck,
  tcpSynClosed,
} from "../fixtures/tcp.js";
import { ipv4Of } from "./decode.js";
import { mutations, parseOrReason, randomBuffers, truncations } from "./malformed.js";

const CLIENT_ISN = 3130452186;
const SERVER_ISN = 3735287786;

function tcpOf(hexFrame: string): TcpSegment {
  const ip = ipv4Of(hexFrame);
  expect(ip.protocol).toBe(IPPROTO_TCP);
  return parseTcp(ip.payload, ip.src, ip.dst);
}

/** Parses a segment whose bytes a test changed, without checksum verification. */
function tcpUnchecked(b: Buffer): TcpSegment {
  return parseTcp(b, 0, 0, { verifyChecksum: false });
}

function fieldsOf(s: TcpSegment): TcpEmitFields {
  const { srcPort, dstPort, seq, ack, flags, window, mss, windowScale, sackPermitted, sack, timestamp } = s;
  return { srcPort, dstPort, seq, ack, flags, window, mss, windowScale, sackPermitted, sack, timestamp };
}

const all = [
  ["SYN", tcpSyn],
  ["SYN-ACK", tcpSynAck],
  ["ACK", tcpAck],
  ["data", tcpData],
  ["data ACK", tcpDataAck],
  ["FIN", tcpFin],
  ["reply data", tcpReplyData],
  ["FIN-ACK", tcpFinAck],
  ["SYN to a closed port", tcpSynClosed],
  ["RST", tcpRst],
] as const;

describe("parseTcp", () => {
  it("parses the captured SYN with MSS, SACK-permitted, timestamps and window scale", () => {
    const s = tcpOf(tcpSyn);
    expect(s).toMatchObject({
      srcPort: 40002,
      dstPort: 8080,
      seq: CLIENT_ISN,
      ack: 0,
      flags: TCP_SYN,
      window: 64240,
      urgent: 0,
      headerLength: 40,
      mss: 1460,
      windowScale: 10,
      sackPermitted: true,
      timestamp: { value: 3728613835, echo: 0 },
    });
    expect(s.sack).toBeUndefined();
    expect(s.payload.length).toBe(0);
  });

  it("parses the captured SYN-ACK", () => {
    expect(tcpOf(tcpSynAck)).toMatchObject({
      srcPort: 8080,
      dstPort: 40002,
      seq: SERVER_ISN,
      ack: CLIENT_ISN + 1,
      flags: TCP_SYN | TCP_ACK,
      window: 65160,
      mss: 1460,
      windowScale: 10,
      sackPermitted: true,
      timestamp: { value: 1650894769, echo: 3728613835 },
    });
  });

  it("parses the captured handshake ACK: timestamps only", () => {
    const s = tcpOf(tcpAck);
    expect(s).toMatchObject({
      flags: TCP_ACK,
      seq: CLIENT_ISN + 1,
      ack: SERVER_ISN + 1,
      window: 63,
      headerLength: 32,
    });
    expect(s).toMatchObject({ sackPermitted: false, timestamp: { value: 3728613835, echo: 1650894769 } });
    expect(s.mss).toBeUndefined();
    expect(s.windowScale).toBeUndefined();
  });

  it("parses captured data, FIN and the replies", () => {
    const data = tcpOf(tcpData);
    expect(data).toMatchObject({ flags: TCP_PSH | TCP_ACK, seq: CLIENT_ISN + 1 });
    expect(data.payload.toString()).toBe("hello\n");
    expect(tcpOf(tcpDataAck)).toMatchObject({ flags: TCP_ACK, ack: CLIENT_ISN + 7 });
    expect(tcpOf(tcpFin)).toMatchObject({
      flags: TCP_FIN | TCP_ACK,
      seq: CLIENT_ISN + 7,
      ack: SERVER_ISN + 1,
    });
    expect(tcpOf(tcpReplyData).payload.toString()).toBe("world\n");
    expect(tcpOf(tcpFinAck)).toMatchObject({
      flags: TCP_FIN | TCP_ACK,
      seq: SERVER_ISN + 7,
      ack: CLIENT_ISN + 8,
    });
  });

  it("parses the captured RST-ACK answering a SYN to a closed port", () => {
    const syn = tcpOf(tcpSynClosed);
    const rst = tcpOf(tcpRst);
    expect(rst).toMatchObject({
      srcPort: syn.dstPort,
      dstPort: syn.srcPort,
      seq: 0,
      ack: syn.seq + 1,
      flags: TCP_RST | TCP_ACK,
      window: 0,
      headerLength: TCP_HEADER_LEN,
      sackPermitted: false,
    });
    expect(rst.timestamp).toBeUndefined();
  });

  it.each(all)("rejects every one-byte change of the captured %s", (_n, hexFrame) => {
    const ip = ipv4Of(hexFrame);
    for (const b of mutations(41, 200, ip.payload)) {
      expect(parseOrReason((x) => parseTcp(x, ip.src, ip.dst), b)).not.toBe("ok");
    }
    expect(parseOrReason((x) => parseTcp(x, ip.src + 1, ip.dst), ip.payload)).toBe("checksum");
  });

  it("throws truncated, then bad-header-length, then checksum as the captured data segment is cut", () => {
    const ip = ipv4Of(tcpData);
    expect(truncations((x) => parseTcp(x, ip.src, ip.dst), ip.payload)).toEqual([
      ...Array(20).fill("truncated"),
      ...Array(12).fill("bad-header-length"),
      ...Array(6).fill("checksum"),
    ]);
  });

  it("throws truncated or bad-header-length for every cut of the SYN, even unchecked", () => {
    const ip = ipv4Of(tcpSyn);
    expect(truncations(tcpUnchecked, ip.payload)).toEqual([
      ...Array(20).fill("truncated"),
      ...Array(20).fill("bad-header-length"),
    ]);
  });

  it("rejects a data offset below 5 words", () => {
    const b = Buffer.from(ipv4Of(tcpRst).payload);
    b[12] = 0x40;
    expect(parseOrReason(tcpUnchecked, b)).toBe("bad-header-length");
  });

  describe("options", () => {
    // The captured SYN's options: mss(0-3) sackOK(4-5) TS(6-15) nop(16) wscale(17-19), at byte 20.
    const syn = (): Buffer => Buffer.from(ipv4Of(tcpSyn).payload);

    it.each([
      ["MSS length 5", 21, 5],
      ["MSS length 3", 21, 3],
      ["SACK-permitted length 3", 25, 3],
      ["timestamp length 9", 27, 9],
      ["window scale length 4", 38, 4],
      ["length 1", 21, 1],
      ["length past the header", 38, 10],
    ])("rejects %s as bad-option", (_n, at, value) => {
      const b = syn();
      b[at] = value;
      expect(parseOrReason(tcpUnchecked, b)).toBe("bad-option");
    });

    it("rejects a kind byte with no room for its length", () => {
      const b = syn();
      b.fill(1, 20, 39); // NOPs up to the last byte, which becomes an MSS kind
      b[39] = 2;
      expect(parseOrReason(tcpUnchecked, b)).toBe("bad-option");
    });

    it("stops at end-of-options and skips unknown kinds", () => {
      const eol = syn();
      eol[24] = 0; // EOL right after MSS
      expect(tcpUnchecked(eol)).toMatchObject({ mss: 1460, sackPermitted: false });
      expect(tcpUnchecked(eol).timestamp).toBeUndefined();
      const unknown = syn();
      unknown[24] = 30; // sackOK (4, 2) becomes an unknown kind 30 of length 2
      expect(tcpUnchecked(unknown)).toMatchObject({ mss: 1460, sackPermitted: false, windowScale: 10 });
    });

    it("treats a window scale above 14 as 14 (RFC 7323)", () => {
      const b = syn();
      b[39] = 15;
      expect(tcpUnchecked(b).windowScale).toBe(14);
    });
  });

  it("only ever throws WireError on random input", () => {
    for (const b of randomBuffers(42, 1000, 64)) parseOrReason((x) => parseTcp(x, 1, 2), b);
    // Random option bytes behind a valid fixed header with a random data offset.
    const fixed = ipv4Of(tcpRst).payload;
    for (const b of randomBuffers(43, 2000, 44)) {
      const seg = Buffer.concat([fixed, b]);
      seg[12] = (5 + (b.length === 0 ? 0 : b[0]! % 11)) << 4;
      parseOrReason(tcpUnchecked, seg);
    }
  });
});

describe("emitTcp", () => {
  it.each(all.filter(([, h]) => h !== tcpSyn && h !== tcpSynAck && h !== tcpSynClosed))(
    "round-trips the captured %s byte for byte",
    (_n, hexFrame) => {
      const ip = ipv4Of(hexFrame);
      const s = parseTcp(ip.payload, ip.src, ip.dst);
      expect(tcpHeaderLength(fieldsOf(s))).toBe(s.headerLength);
      const at = 2;
      const out = Buffer.alloc(at + ip.payload.length + 2, 0xaa);
      s.payload.copy(out, at + s.headerLength); // the payload is in place first, as the stack writes it
      expect(emitTcp(out, at, ip.src, ip.dst, fieldsOf(s), s.payload.length)).toBe(ip.payload.length);
      expect(out.subarray(at, at + ip.payload.length).equals(ip.payload)).toBe(true);
      expect([out[0], out[1], out[at + ip.payload.length], out[at + ip.payload.length + 1]]).toEqual([
        0xaa, 0xaa, 0xaa, 0xaa,
      ]);
    },
  );

  it.each([
    ["SYN", tcpSyn],
    ["SYN-ACK", tcpSynAck],
  ])("re-emits the captured %s with the same options in its own layout", (_n, hexFrame) => {
    const ip = ipv4Of(hexFrame);
    const s = parseTcp(ip.payload, ip.src, ip.dst);
    const out = Buffer.alloc(60);
    const length = emitTcp(out, 0, ip.src, ip.dst, fieldsOf(s), 0);
    const again = parseTcp(out.subarray(0, length), ip.src, ip.dst);
    expect(fieldsOf(again)).toEqual(fieldsOf(s));
    expect(again.headerLength % 4).toBe(0);
  });

  it("writes SACK blocks next to timestamps within the 60-byte header limit", () => {
    const fields: TcpEmitFields = {
      ...fieldsOf(tcpOf(tcpAck)),
      sack: [
        [CLIENT_ISN + 100, CLIENT_ISN + 200],
        [CLIENT_ISN + 300, CLIENT_ISN + 400],
        [0xfffffff0, 0x10],
      ],
    };
    expect(tcpHeaderLength(fields)).toBe(60);
    const out = Buffer.alloc(60);
    expect(emitTcp(out, 0, 1, 2, fields, 0)).toBe(60);
    const s = parseTcp(out, 1, 2);
    expect(s.sack).toEqual(fields.sack);
    expect(s.timestamp).toEqual(fields.timestamp);
  });

  it("builds the RST Linux sent for a SYN to a closed port", () => {
    const ip = ipv4Of(tcpSynClosed);
    const syn = parseTcp(ip.payload, ip.src, ip.dst);
    const out = Buffer.alloc(TCP_HEADER_LEN);
    emitTcp(
      out,
      0,
      ip.dst,
      ip.src,
      {
        srcPort: syn.dstPort,
        dstPort: syn.srcPort,
        seq: 0,
        ack: syn.seq + 1,
        flags: TCP_RST | TCP_ACK,
        window: 0,
      },
      0,
    );
    expect(out.equals(ipv4Of(tcpRst).payload)).toBe(true);
  });
});

describe("formatTcp", () => {
  it("prints ports, flags, numbers and options", () => {
    expect(formatTcp(tcpOf(tcpSyn))).toBe(
      "TCP 40002 > 8080 [S] seq=3130452186 ack=0 win=64240 len=0 <mss 1460,wscale 10,sackOK,TS 3728613835:0>",
    );
    expect(formatTcp(tcpOf(tcpRst))).toBe("TCP 8081 > 40003 [R.] seq=0 ack=4235259783 win=0 len=0");
    expect(formatTcp(tcpOf(tcpData))).toMatch(
      /^TCP 40002 > 8080 \[P\.\] .* len=6 <TS 3728613835:1650894769>$/,
    );
    expect(formatTcpFlags(TCP_FIN | TCP_ACK)).toBe("F.");
    expect(formatTcpFlags(0)).toBe("none");
  });
});

describe("tcp options limit", () => {
  it("cuts SACK blocks so the header never exceeds 60 bytes", () => {
    const fields = {
      srcPort: 1,
      dstPort: 2,
      seq: 10,
      ack: 20,
      flags: 0x10,
      window: 100,
      mss: 1460,
      windowScale: 7,
      sackPermitted: true,
      timestamp: { value: 1, echo: 2 },
      sack: [
        [100, 200],
        [300, 400],
        [500, 600],
      ] as [number, number][],
    };
    const hlen = tcpHeaderLength(fields);
    expect(hlen).toBeLessThanOrEqual(60);
    const buf = Buffer.alloc(hlen);
    emitTcp(buf, 0, 0x0a000001, 0x0a000002, fields, 0);
    const seg = parseTcp(buf, 0x0a000001, 0x0a000002);
    expect(seg.headerLength).toBe(hlen);
    expect(seg.mss).toBe(1460);
    expect(seg.timestamp).toEqual({ value: 1, echo: 2 });
    expect(seg.sack).toEqual([[100, 200]]);
  });
});
