/** IPv4 and ICMPv4: hostile bytes give a WireError or in-bounds views; emitted packets parse back. */
import { fuzz } from "@desktopd/fuzz";
import { describe, expect, it } from "vitest";
import { checksum } from "../../src/wire/checksum.js";
import { emitIcmpv4, formatIcmpv4, ICMP_HEADER_LEN, parseIcmpv4 } from "../../src/wire/icmpv4.js";
import { emitIpv4Header, formatIpv4, IPV4_HEADER_LEN, icmpQuote, parseIpv4 } from "../../src/wire/ipv4.js";
import { parseOrReason } from "../wire/malformed.js";
import { bytes, fc, mutated, u8, u16, u32 } from "./arbitraries.js";

const ipv4Fields = fc.record({
  src: u32,
  dst: u32,
  protocol: u8,
  ttl: u8,
  tos: u8,
  id: u16,
  dontFragment: fc.boolean(),
  moreFragments: fc.boolean(),
  fragmentOffset: fc.integer({ min: 0, max: 0x1fff }).map((n) => n * 8),
});

/** A valid packet: header emitted by us, checksum right, arbitrary payload. */
const ipv4Packet = fc.tuple(ipv4Fields, bytes(64)).map(([f, payload]) => {
  const buf = Buffer.alloc(IPV4_HEADER_LEN + payload.length);
  emitIpv4Header(buf, 0, { ...f, payloadLength: payload.length });
  payload.copy(buf, IPV4_HEADER_LEN);
  return buf;
});

describe("ipv4", () => {
  it("parses arbitrary bytes or throws WireError; what parses can be quoted and printed", () => {
    const input = fc.tuple(fc.oneof(bytes(80), mutated(ipv4Packet)), fc.boolean());
    fuzz(
      "ipv4",
      "arbitrary bytes",
      input,
      ([b, verifyChecksum]) => {
        const parse = (x: Buffer) => parseIpv4(x, { verifyChecksum });
        if (parseOrReason(parse, b) !== "ok") return;
        const p = parse(b);
        formatIpv4(p);
        // The quote's header is emitted again from the parsed fields: it must check out.
        expect(checksum(icmpQuote(p), 0, IPV4_HEADER_LEN)).toBe(0);
      },
      2000,
    );
  });

  it("parses back what it emits, cutting Ethernet padding off", () => {
    fuzz(
      "ipv4",
      "round trip",
      fc.tuple(ipv4Fields, bytes(64), bytes(8)),
      ([f, payload, padding]) => {
        const buf = Buffer.alloc(IPV4_HEADER_LEN + payload.length);
        emitIpv4Header(buf, 0, { ...f, payloadLength: payload.length });
        payload.copy(buf, IPV4_HEADER_LEN);
        const totalLength = buf.length;
        expect(parseIpv4(Buffer.concat([buf, padding]))).toEqual({
          ...f,
          headerLength: IPV4_HEADER_LEN,
          totalLength,
          payload,
        });
      },
      500,
    );
  });
});

describe("icmpv4", () => {
  const message = fc.record({ type: u8, code: u8, rest: u32, payload: bytes(48) });
  const valid = message.map((m) => {
    const buf = Buffer.alloc(ICMP_HEADER_LEN + m.payload.length);
    emitIcmpv4(buf, 0, m);
    return buf;
  });

  it("parses arbitrary bytes or throws WireError", () => {
    fuzz(
      "icmpv4",
      "arbitrary bytes",
      fc.tuple(fc.oneof(bytes(40), mutated(valid)), fc.boolean()),
      ([b, verifyChecksum]) => {
        const parse = (x: Buffer) => parseIcmpv4(x, { verifyChecksum });
        if (parseOrReason(parse, b) === "ok") formatIcmpv4(parse(b));
      },
      2000,
    );
  });

  it("parses back what it emits", () => {
    fuzz(
      "icmpv4",
      "round trip",
      message,
      (m) => {
        const buf = Buffer.alloc(ICMP_HEADER_LEN + m.payload.length);
        expect(emitIcmpv4(buf, 0, m)).toBe(buf.length);
        expect(parseIcmpv4(buf)).toEqual(m);
      },
      500,
    );
  });
});
