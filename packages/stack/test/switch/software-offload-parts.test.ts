/**
 * Software offload over a frame given in parts (headers, then views of the sender's payload), as
 * the switch does it for a link that writes parts but has no TSO or checksum offload. Each result
 * must be the frame the copying path builds, byte for byte, with the payload never copied.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { tcpFrame, tcpHeaders } from "../../src/iface/frames.js";
import { tcp6Frame, tcp6Headers } from "../../src/iface/frames6.js";
import {
  completeChecksum,
  completeChecksumParts,
  segmentTcpFrame,
  segmentTcpParts,
} from "../../src/switch/software-offload.js";
import { finish, sum16, sum16Views } from "../../src/wire/checksum.js";
import { TCP_ACK, TCP_FIN, TCP_PSH, type TcpEmitFields } from "../../src/wire/tcp.js";
import { arpRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";

const route = {
  srcMac: Buffer.from("5a94efe40cdd", "hex"),
  dstMac: Buffer.from("020000000003", "hex"),
  srcIp: 0xc0a84101,
  dstIp: 0xc0a84103,
};
const route6 = {
  srcMac: route.srcMac,
  dstMac: route.dstMac,
  src: Buffer.from("fdc4f303932400000000000000000001", "hex"),
  dst: Buffer.from("fdc4f303932400000000000000000003", "hex"),
};

/** `whole` cut at `cuts` (sorted offsets into it) into views of its own memory. */
function cutInto(whole: Buffer, cuts: number[]): Buffer[] {
  const at = [0, ...cuts.filter((c) => c > 0 && c < whole.length).sort((a, b) => a - b), whole.length];
  const views: Buffer[] = [];
  for (let i = 0; i + 1 < at.length; i++)
    if (at[i + 1]! > at[i]!) views.push(whole.subarray(at[i], at[i + 1]));
  return views;
}

const TCP_CWR = 0x80;
const hex = (frames: readonly Buffer[]) => frames.map((f) => f.toString("hex"));

describe("sum16Views", () => {
  it("sums views as one buffer, whatever the odd and even cuts", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.array(fc.nat(300), { maxLength: 8 }),
        (data, cuts) => {
          const whole = Buffer.from(data);
          const views = cutInto(whole, cuts);
          expect(finish(sum16Views(views, 77))).toBe(finish(sum16(whole, 0, whole.length, 77)));
        },
      ),
    );
  });
});

describe("segmentTcpParts", () => {
  const arbitraryCase = fc.record({
    v6: fc.boolean(),
    payloadLength: fc.nat(9000),
    segmentSize: fc.integer({ min: 1, max: 4000 }),
    cuts: fc.array(fc.nat(9000), { maxLength: 6 }),
    seq: fc.nat(0xffff_ffff),
    flags: fc.constantFrom(TCP_ACK, TCP_ACK | TCP_PSH, TCP_ACK | TCP_FIN | TCP_PSH, TCP_ACK | TCP_CWR),
    timestamp: fc.boolean(),
  });

  it("cuts into the frames segmentTcpFrame cuts, each payload a view of the sender's memory", () => {
    fc.assert(
      fc.property(arbitraryCase, (c) => {
        const payload = Buffer.alloc(c.payloadLength);
        for (let i = 0; i < payload.length; i++) payload[i] = (i * 131 + c.seq) & 0xff;
        const fields: TcpEmitFields = {
          srcPort: 443,
          dstPort: 51000,
          seq: c.seq,
          ack: 7,
          flags: c.flags,
          window: 501,
        };
        if (c.timestamp) fields.timestamp = { value: 1, echo: 2 };
        const head = c.v6
          ? tcp6Headers(route6, fields, payload.length)
          : tcpHeaders(route, fields, payload.length);
        const frame = c.v6
          ? tcp6Frame(route6, fields, payload, true)
          : tcpFrame(route, fields, payload, true);
        const headBefore = Buffer.from(head);
        const parts = [head, ...cutInto(payload, c.cuts)];
        const got = segmentTcpParts(parts, c.segmentSize);
        expect(got).toBeDefined();
        expect(hex(got!.map((p) => Buffer.concat(p)))).toEqual(hex(segmentTcpFrame(frame, c.segmentSize)));
        for (const segment of got!)
          for (const view of segment.slice(1)) expect(view.buffer).toBe(payload.buffer);
        expect(head.equals(headBefore)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it("declines a frame whose headers are not all in the first part, and one that is not TCP", () => {
    const fields: TcpEmitFields = { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_ACK, window: 1 };
    const frame = tcpFrame(route, fields, Buffer.alloc(3000, 1), true);
    expect(segmentTcpParts([frame.subarray(0, 40), frame.subarray(40)], 1000)).toBeUndefined();
    expect(segmentTcpParts([bytes(arpRequest)], 1000)).toBeUndefined();
    expect(segmentTcpParts([frame], 0)).toBeUndefined();
  });
});

describe("completeChecksumParts", () => {
  it("completes the checksum completeChecksum completes, in a copy of the first part only", () => {
    fc.assert(
      fc.property(
        fc.nat(3000),
        fc.array(fc.nat(3000), { maxLength: 5 }),
        fc.boolean(),
        (length, cuts, v6) => {
          const payload = Buffer.alloc(length);
          for (let i = 0; i < length; i++) payload[i] = (i * 7 + 3) & 0xff;
          const fields: TcpEmitFields = {
            srcPort: 80,
            dstPort: 40000,
            seq: 9,
            ack: 1,
            flags: TCP_ACK,
            window: 9,
          };
          const head = v6 ? tcp6Headers(route6, fields, length) : tcpHeaders(route, fields, length);
          const frame = v6
            ? tcp6Frame(route6, fields, payload, true)
            : tcpFrame(route, fields, payload, true);
          const l4 = v6 ? 14 + 40 : 14 + 20;
          const headBefore = Buffer.from(head);
          const views = cutInto(payload, cuts);
          const got = completeChecksumParts([head, ...views], l4, 16);
          completeChecksum(frame, l4, 16);
          expect(Buffer.concat(got!).equals(frame)).toBe(true);
          expect(got!.slice(1)).toEqual(views);
          expect(head.equals(headBefore)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("declines a checksum field outside the first part", () => {
    const head = tcpHeaders(route, { srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TCP_ACK, window: 1 }, 10);
    expect(
      completeChecksumParts([head.subarray(0, 40), head.subarray(40), Buffer.alloc(10)], 34, 16),
    ).toBeUndefined();
  });
});
