/**
 * IPv4 reassembly under arbitrary fragment sequences: it never throws, stays within its datagram
 * and byte budgets (and gives every charged byte back), and what it puts together is what was sent.
 */

import { ManualClock } from "@desktopd/core";
import { fuzz } from "@desktopd/fuzz";
import { describe, expect, it } from "vitest";
import { IPPROTO_UDP, IPV4_HEADER_LEN, type Ipv4Packet } from "../../src/wire/ipv4.js";
import { Ipv4Reassembler } from "../../src/wire/reassembly.js";
import { bytes, fc, u16 } from "./arbitraries.js";

/** Byte `at` of datagram `key`: every fragment of a datagram agrees on its content. */
const content = (key: number, at: number) => (key * 131 + at * 7 + (at >> 8)) & 0xff;

function fragment(key: number, offset: number, length: number, more: boolean, headerLength = 20): Ipv4Packet {
  const payload = Buffer.alloc(length);
  for (let i = 0; i < length; i++) payload[i] = content(key, offset + i);
  return {
    src: 0x0a000002 + key,
    dst: 0x0a000001,
    protocol: IPPROTO_UDP,
    ttl: 64,
    tos: 0,
    id: 7 + key,
    dontFragment: false,
    moreFragments: more,
    fragmentOffset: offset,
    headerLength,
    totalLength: headerLength + length,
    payload,
  };
}

const op = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      kind: fc.constant("fragment" as const),
      key: fc.integer({ min: 0, max: 5 }),
      // Offsets on the 8-byte grid, as parseIpv4 reads them; near 0 so that fragments meet.
      offset: fc
        .oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 0x1fff }))
        .map((n) => n * 8),
      length: fc.oneof(
        fc.integer({ min: 0, max: 4 }).map((n) => n * 8),
        fc.integer({ min: 0, max: 200 }),
      ),
      more: fc.boolean(),
      headerLength: fc.constantFrom(20, 24, 60),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.nat(40_000) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("expire" as const) }) },
);

const limits = fc.record({
  timeoutMs: fc.integer({ min: 1, max: 30_000 }),
  maxDatagrams: fc.integer({ min: 1, max: 4 }),
  maxBytes: fc.integer({ min: 64, max: 4096 }),
});

describe("Ipv4Reassembler", () => {
  it("takes arbitrary fragment sequences within its budgets, and assembles only what was sent", () => {
    fuzz(
      "reassembly",
      "arbitrary fragments",
      fc.record({ limits, ops: fc.array(op, { maxLength: 60 }) }),
      ({ limits, ops }) => {
        const clock = new ManualClock(1000);
        const r = new Ipv4Reassembler({ clock, ...limits });
        for (const o of ops) {
          if (o.kind === "advance") clock.advance(o.ms);
          else if (o.kind === "expire") r.expire();
          else {
            const whole = r.push(fragment(o.key, o.offset, o.length, o.more, o.headerLength));
            if (whole) {
              expect(whole.moreFragments || whole.fragmentOffset !== 0).toBe(false);
              expect(whole.totalLength).toBe(whole.headerLength + whole.payload.length);
              expect(whole.totalLength).toBeLessThanOrEqual(0xffff);
              const key = whole.src - 0x0a000002;
              expect(whole.payload.equals(fragment(key, 0, whole.payload.length, false).payload)).toBe(true);
            }
          }
          expect(r.pending).toBeLessThanOrEqual(limits.maxDatagrams);
          expect(r.bufferedBytes).toBeLessThanOrEqual(limits.maxBytes);
          expect(r.bufferedBytes).toBeGreaterThanOrEqual(0);
          if (r.pending === 0) expect(r.bufferedBytes).toBe(0);
          // Something pending has a deadline; after expire() none is past.
          expect(r.pollAt() === undefined).toBe(r.pending === 0);
          if (o.kind === "expire" && r.pending > 0) expect(r.pollAt()).toBeGreaterThan(clock.now());
        }
        // Past the timeout everything is given back.
        clock.advance(limits.timeoutMs);
        r.expire();
        expect([r.pending, r.bufferedBytes, r.pollAt()]).toEqual([0, 0, undefined]);
      },
      1000,
    );
  });

  it("puts a datagram cut anywhere on the 8-byte grid back together, in any order, with duplicates", () => {
    const cuts = fc
      .record({
        length: fc.integer({ min: 1, max: 3000 }),
        cuts: fc.uniqueArray(fc.integer({ min: 1, max: 374 })),
      })
      .map(({ length, cuts }) => ({
        length,
        starts: [0, ...cuts.map((c) => c * 8).filter((c) => c < length)].sort((a, b) => a - b),
      }));
    const input = cuts.chain(({ length, starts }) =>
      fc.record({
        length: fc.constant(length),
        starts: fc.constant(starts),
        order: fc.shuffledSubarray(starts, { minLength: starts.length }),
        duplicates: fc.subarray(starts),
        id: u16,
      }),
    );
    fuzz(
      "reassembly",
      "round trip",
      input,
      ({ length, starts, order, duplicates }) => {
        const r = new Ipv4Reassembler({ clock: new ManualClock(0) });
        const pieces = new Map(
          starts.map((s, i) => {
            const end = starts[i + 1] ?? length;
            return [s, fragment(1, s, end - s, end < length)];
          }),
        );
        // A duplicate that came after the last piece would start a new datagram: send them before.
        const last = order[order.length - 1]!;
        const sends = order.flatMap((s) => (s !== last && duplicates.includes(s) ? [s, s] : [s]));
        const out = sends.map((s) => r.push(pieces.get(s)!));
        expect(out.slice(0, -1).every((p) => p === undefined)).toBe(true);
        const whole = out[out.length - 1]!;
        expect(whole.payload.equals(fragment(1, 0, length, false).payload)).toBe(true);
        expect(whole).toMatchObject({
          headerLength: IPV4_HEADER_LEN,
          totalLength: IPV4_HEADER_LEN + length,
          id: 8,
        });
        expect([r.pending, r.bufferedBytes]).toEqual([0, 0]);
      },
      500,
    );
  });

  it("never throws on fragments of arbitrary content and shape", () => {
    const packet = fc.record({
      src: fc.integer({ min: 0, max: 3 }),
      id: fc.integer({ min: 0, max: 3 }),
      protocol: fc.constantFrom(1, 6, 17),
      moreFragments: fc.boolean(),
      fragmentOffset: fc.integer({ min: 0, max: 0x1fff }).map((n) => n * 8),
      headerLength: fc.integer({ min: 5, max: 15 }).map((n) => n * 4),
      payload: bytes(100),
    });
    fuzz(
      "reassembly",
      "arbitrary packets",
      fc.array(packet, { maxLength: 40 }),
      (packets) => {
        const r = new Ipv4Reassembler({ clock: new ManualClock(0), maxDatagrams: 2, maxBytes: 1024 });
        for (const p of packets) {
          r.push({
            ...p,
            dst: 1,
            ttl: 1,
            tos: 0,
            dontFragment: false,
            totalLength: p.headerLength + p.payload.length,
          });
          expect(r.bufferedBytes).toBeLessThanOrEqual(1024);
        }
      },
      1000,
    );
  });
});
