import { SeededRandom } from "@desktopd/core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checksum, finish, pseudoHeaderSum, sum16 } from "../../src/wire/checksum.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../src/wire/ipv4.js";
import { icmpPortUnreachable, udpRequest } from "../fixtures/frames.js";
import { tcpSyn } from "../fixtures/tcp.js";
import { ipv4BytesOf, ipv4Of } from "./decode.js";

/** RFC 1071 done the slow, obvious way: 16-bit words, end-around carry after every add. */
function reference(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i += 2) {
    sum += (buf[i]! << 8) | (i + 1 < buf.length ? buf[i + 1]! : 0);
    if (sum > 0xffff) sum = (sum & 0xffff) + 1;
  }
  return ~sum & 0xffff;
}

describe("checksum", () => {
  it("matches the worked example of RFC 1071", () => {
    const b = Buffer.from("0001f203f4f5f6f7", "hex");
    expect(sum16(b, 0, b.length)).toBe(0x2ddf0);
    expect(checksum(b)).toBe(0x220d);
  });

  it("verifies the captured IPv4 headers to 0", () => {
    for (const hexFrame of [udpRequest, icmpPortUnreachable]) {
      expect(checksum(ipv4BytesOf(hexFrame), 0, 20)).toBe(0);
    }
  });

  it("verifies captured UDP and TCP segments with the pseudo-header", () => {
    for (const [hexFrame, protocol] of [
      [udpRequest, IPPROTO_UDP],
      [tcpSyn, IPPROTO_TCP],
    ] as const) {
      const ip = ipv4Of(hexFrame);
      const initial = pseudoHeaderSum(ip.src, ip.dst, protocol, ip.payload.length);
      expect(finish(sum16(ip.payload, 0, ip.payload.length, initial))).toBe(0);
    }
  });

  it("agrees with the reference on seeded random buffers, odd lengths and offsets", () => {
    const random = new SeededRandom(11);
    for (let round = 0; round < 300; round++) {
      const b = Buffer.alloc(random.u32() % 200);
      for (let i = 0; i < b.length; i++) b[i] = random.u32() & 0xff;
      expect(checksum(b)).toBe(reference(b));
      const start = b.length === 0 ? 0 : random.u32() % b.length;
      expect(checksum(b, start, b.length)).toBe(reference(b.subarray(start)));
    }
  });

  it("agrees with the reference on long runs at every alignment of the memory, the word path included", () => {
    fc.assert(
      fc.property(
        fc.nat(70_000),
        fc.nat(),
        fc.nat(3),
        fc.nat(70_000),
        fc.nat(0xffff),
        (length, seed, shift, cut, initial) => {
          // Bytes from a seeded generator (fast-check's own arrays stay short), `shift` bytes into
          // memory of their own, so the run starts at each address mod 4.
          const random = new SeededRandom(seed);
          const data = Buffer.alloc(length);
          for (let i = 0; i < length; i++) data[i] = random.u32() & 0xff;
          const memory = Buffer.alloc(data.length + 4);
          memory.set(data, shift);
          const start = shift + Math.min(cut % 8, data.length);
          const end = shift + data.length;
          const run = memory.subarray(start, end);
          expect(finish(sum16(memory, start, end, initial))).toBe(
            finish(initial + (~reference(run) & 0xffff)),
          );
          expect(finish(sum16(run, 0, run.length))).toBe(reference(run));
        },
      ),
      { numRuns: 150 },
    );
  });

  it("does not lose carries over 64 KiB of 0xff at any alignment", () => {
    const memory = Buffer.alloc(0xffff + 8, 0xff);
    for (let shift = 0; shift < 4; shift++) {
      const b = memory.subarray(shift, shift + 0xffff);
      expect(checksum(b)).toBe(reference(b));
      expect(checksum(b, 0, 0xfffe)).toBe(0);
    }
  });

  it("does not lose carries over 64 KiB of 0xff", () => {
    const b = Buffer.alloc(0xffff, 0xff);
    expect(checksum(b)).toBe(reference(b));
    expect(checksum(b, 0, 0xfffe)).toBe(0);
  });

  it("chains partial sums through `initial` at even boundaries", () => {
    const ip = ipv4BytesOf(icmpPortUnreachable);
    const whole = checksum(ip);
    expect(finish(sum16(ip, 20, ip.length, sum16(ip, 0, 20)))).toBe(whole);
  });

  it("sums the pseudo-header fields as 16-bit words", () => {
    expect(pseudoHeaderSum(0x0a630001, 0xffffffff, 17, 0x1234)).toBe(
      0x0a63 + 0x0001 + 0xffff + 0xffff + 17 + 0x1234,
    );
  });
});
