import { ManualClock, SeededRandom } from "@desktopd/core";
import { describe, expect, it } from "vitest";
import { parseIcmpv4 } from "../../src/wire/icmpv4.js";
import { IPPROTO_ICMP, IPPROTO_UDP, type Ipv4Packet } from "../../src/wire/ipv4.js";
import { FRAGMENT_OVERHEAD, Ipv4Reassembler, type ReassemblyOptions } from "../../src/wire/reassembly.js";
import { parseUdp } from "../../src/wire/udp.js";
import {
  icmpFragment0,
  icmpFragment1,
  icmpFragment2,
  udpFragment0,
  udpFragment1,
  udpFragment2,
} from "../fixtures/fragments.js";
import { ipv4Of } from "./decode.js";

const udpFragments = (): Ipv4Packet[] => [udpFragment0, udpFragment1, udpFragment2].map(ipv4Of);
const icmpFragments = (): Ipv4Packet[] => [icmpFragment0, icmpFragment1, icmpFragment2].map(ipv4Of);
/** The payload the UDP sender wrote: 1200 bytes counting i % 251. */
const UDP_TEXT = Buffer.from(Array.from({ length: 1200 }, (_, i) => i % 251));

function reassembler(options: Partial<ReassemblyOptions> = {}) {
  const clock = new ManualClock(1000);
  return { clock, r: new Ipv4Reassembler({ clock, ...options }) };
}

/** Pushes all packets; returns what came out (at most one datagram expected). */
function feed(r: Ipv4Reassembler, packets: Ipv4Packet[]): Ipv4Packet[] {
  const out: Ipv4Packet[] = [];
  for (const p of packets) {
    const whole = r.push(p);
    if (whole) out.push(whole);
  }
  return out;
}

function expectUdpDatagram(p: Ipv4Packet): void {
  expect(p).toMatchObject({
    src: 0x0a630001,
    dst: 0x0a630002,
    protocol: IPPROTO_UDP,
    id: 46026,
    ttl: 64,
    moreFragments: false,
    fragmentOffset: 0,
    headerLength: 20,
    totalLength: 1228,
  });
  // The UDP checksum covers the whole datagram, so it verifies every reassembled byte.
  const udp = parseUdp(p.payload, p.src, p.dst);
  expect(udp).toMatchObject({ srcPort: 40005, dstPort: 7 });
  expect(udp.payload.equals(UDP_TEXT)).toBe(true);
}

function edit(p: Ipv4Packet, fields: Partial<Ipv4Packet>): Ipv4Packet {
  return { ...p, ...fields };
}

describe("Ipv4Reassembler", () => {
  it("reassembles captured UDP fragments in order", () => {
    const { r } = reassembler();
    const [f0, f1, f2] = udpFragments();
    expect(f0!.moreFragments && f1!.moreFragments && !f2!.moreFragments).toBe(true);
    expect(r.push(f0!)).toBeUndefined();
    expect(r.push(f1!)).toBeUndefined();
    expect(r.pending).toBe(1);
    const whole = r.push(f2!)!;
    expectUdpDatagram(whole);
    expect(r.pending).toBe(0);
    expect(r.drops).toEqual({});
  });

  it("reassembles captured ICMP echo fragments into a request that verifies", () => {
    const { r } = reassembler();
    const [whole] = feed(r, icmpFragments());
    expect(whole).toMatchObject({ protocol: IPPROTO_ICMP, id: 18031, totalLength: 20 + 3008 });
    const echo = parseIcmpv4(whole!.payload);
    expect(echo).toMatchObject({ type: 8, rest: 5896 << 16 });
    expect(echo.payload.length).toBe(3000);
  });

  it.each([
    [0, 1, 2],
    [0, 2, 1],
    [1, 0, 2],
    [1, 2, 0],
    [2, 0, 1],
    [2, 1, 0],
  ])("reassembles captured fragments in order %j", (...order) => {
    const { r } = reassembler();
    const fragments = udpFragments();
    const out = feed(
      r,
      order.map((i) => fragments[i]!),
    );
    expect(out).toHaveLength(1);
    expectUdpDatagram(out[0]!);
  });

  it("takes the header fields from the offset-0 fragment even when it arrives last", () => {
    const { r } = reassembler();
    const [f0, f1, f2] = udpFragments();
    const [whole] = feed(r, [edit(f2!, { ttl: 3, tos: 9 }), edit(f1!, { ttl: 4 }), f0!]);
    expect(whole).toMatchObject({ ttl: 64, tos: 0 });
  });

  it("returns a fresh payload that later changes to the frames cannot touch", () => {
    const { r } = reassembler();
    const fragments = udpFragments();
    const [whole] = feed(r, fragments);
    for (const f of fragments) f.payload.fill(0);
    expectUdpDatagram(whole!);
  });

  it("copies fragments, so the caller may reuse a frame after push", () => {
    const { r } = reassembler();
    const [f0, f1, f2] = udpFragments();
    const saved = Buffer.from(f0!.payload);
    r.push(f0!);
    f0!.payload.fill(0xee);
    r.push(f1!);
    const whole = r.push(f2!)!;
    expect(whole.payload.subarray(0, saved.length).equals(saved)).toBe(true);
  });

  it("returns a packet that is not a fragment as it is", () => {
    const { r } = reassembler();
    const p = edit(udpFragments()[0]!, { moreFragments: false });
    expect(r.push(p)).toBe(p);
    expect(r.pending).toBe(0);
  });

  it("ignores an exact duplicate and counts it", () => {
    const { r } = reassembler();
    const [f0, f1, f2] = udpFragments();
    const out = feed(r, [f1!, f0!, f1!, f2!]);
    expect(out).toHaveLength(1);
    expectUdpDatagram(out[0]!);
    expect(r.drops).toEqual({ duplicate: 1 });
  });

  it("drops the whole datagram when a fragment overlaps another", () => {
    const { r } = reassembler();
    const [f0, f1, f2] = udpFragments();
    r.push(f0!);
    // The second fragment moved back by 8 bytes: its first 8 bytes would rewrite the first's last 8.
    expect(r.push(edit(f1!, { fragmentOffset: f1!.fragmentOffset - 8 }))).toBeUndefined();
    expect(r.drops).toEqual({ overlap: 1 });
    expect(r.pending).toBe(0);
    // What follows starts a new datagram that never completes without its first fragment.
    expect(feed(r, [f1!, f2!])).toEqual([]);
    expect(r.pending).toBe(1);
  });

  it("drops the whole datagram when a fragment repeats a range with other bytes", () => {
    const { r } = reassembler();
    const [f0, f1] = udpFragments();
    r.push(f0!);
    r.push(f1!);
    const altered = Buffer.from(f1!.payload);
    altered[100] = altered[100]! ^ 1;
    expect(r.push(edit(f1!, { payload: altered }))).toBeUndefined();
    expect(r.drops).toEqual({ overlap: 1 });
    expect(r.pending).toBe(0);
  });

  it("drops a fragment that overlaps the next one", () => {
    const { r } = reassembler();
    const [f0, f1] = udpFragments();
    r.push(f1!);
    expect(r.push(edit(f0!, { payload: Buffer.concat([f0!.payload, Buffer.alloc(8)]) }))).toBeUndefined();
    expect(r.drops).toEqual({ overlap: 1 });
  });

  it("keeps datagrams with the same id from different sources apart", () => {
    const { r } = reassembler();
    const [f0, f1, f2] = udpFragments();
    const other = (p: Ipv4Packet) => edit(p, { src: 0x0a630003 });
    const out = feed(r, [f0!, other(f1!), f1!, other(f0!), f2!]);
    expect(out).toHaveLength(1);
    expectUdpDatagram(out[0]!);
    expect(r.pending).toBe(1);
  });

  it("drops incomplete datagrams at the timeout, not before", () => {
    const { clock, r } = reassembler({ timeoutMs: 30_000 });
    const [f0, f1, f2] = udpFragments();
    r.push(f0!);
    expect(r.pollAt()).toBe(31_000);
    clock.advance(29_999);
    r.expire();
    expect(r.pending).toBe(1);
    clock.advance(1);
    r.expire();
    expect(r.pending).toBe(0);
    expect(r.pollAt()).toBeUndefined();
    expect(r.drops).toEqual({ timeout: 1 });
    expect(feed(r, [f1!, f2!])).toEqual([]);
  });

  it("does not complete a datagram whose first fragment timed out, even without expire()", () => {
    const { clock, r } = reassembler({ timeoutMs: 5_000 });
    const [f0, f1, f2] = udpFragments();
    feed(r, [f0!, f1!]);
    clock.advance(5_000);
    expect(r.push(f2!)).toBeUndefined();
    expect(r.drops).toEqual({ timeout: 1 });
    expect(r.pending).toBe(1);
  });

  it("evicts the oldest datagram when too many are in flight", () => {
    const { clock, r } = reassembler({ maxDatagrams: 2 });
    const [f0, f1, f2] = udpFragments();
    for (const id of [1, 2, 3]) {
      r.push(edit(f0!, { id }));
      clock.advance(10);
    }
    expect(r.pending).toBe(2);
    expect(r.drops).toEqual({ limit: 1 });
    // id 1 was evicted; id 3 completes.
    expect(feed(r, [edit(f1!, { id: 1 }), edit(f2!, { id: 1 })])).toEqual([]);
    const out = feed(r, [edit(f1!, { id: 3 }), edit(f2!, { id: 3 })]);
    expect(out).toHaveLength(1);
    expect(out[0]!.payload.equals(feed(reassembler().r, udpFragments())[0]!.payload)).toBe(true);
  });

  it("evicts the oldest datagrams to stay within the byte budget", () => {
    // Exactly one whole datagram fits: 552 + 552 + 104 payload bytes plus overhead per fragment.
    const { r } = reassembler({ maxBytes: 1208 + 3 * FRAGMENT_OVERHEAD });
    const [f0, f1, f2] = udpFragments();
    feed(r, [f0!, f1!]);
    expect(r.push(edit(f0!, { id: 2 }))).toBeUndefined();
    expect(r.drops).toEqual({ limit: 1 });
    expect(r.pending).toBe(1);
    // Datagram 2 still fits and completes; the budget is released when it does.
    expect(feed(r, [edit(f1!, { id: 2 }), edit(f2!, { id: 2 })])).toHaveLength(1);
    expect(feed(r, [f0!, f1!, f2!])).toHaveLength(1);
    expect(r.pending).toBe(0);
  });

  it("keeps each owner within its share of datagrams: a flooding sender evicts only its own", () => {
    const { clock, r } = reassembler({ maxDatagrams: 8 });
    const [f0, f1, f2] = udpFragments();
    // The honest sender's datagram waits for its last two fragments...
    r.push(f0!, "honest");
    // ...while another sends 20 first fragments: it keeps its newest 4 (half of 8), no more.
    for (let id = 100; id < 120; id++) {
      r.push(edit(f0!, { id, src: 0x0a630063 }), "flood");
      clock.advance(1);
    }
    expect(r.pending).toBe(5);
    expect(r.drops).toEqual({ "owner-limit": 16 });
    expect(feed(r, [f1!, f2!]).map((p) => p.id)).toEqual([46026]);
    // The flood's newest ones are the ones kept.
    const done = feed(r, [edit(f1!, { id: 119, src: 0x0a630063 }), edit(f2!, { id: 119, src: 0x0a630063 })]);
    expect(done).toHaveLength(1);
    expect(r.pending).toBe(3);
  });

  it("keeps each owner within its share of bytes", () => {
    // Room for two datagrams in all, one per owner.
    const { r } = reassembler({ maxBytes: 2 * (1208 + 3 * FRAGMENT_OVERHEAD) });
    const [f0, f1, f2] = udpFragments();
    r.push(f0!, "honest");
    r.push(edit(f0!, { id: 7 }), "flood");
    r.push(edit(f1!, { id: 7 }), "flood");
    // A second datagram of the flood's does not fit its share: its own first one makes room.
    r.push(edit(f0!, { id: 8 }), "flood");
    r.push(edit(f1!, { id: 8 }), "flood");
    expect(r.drops).toEqual({ "owner-limit": 1 });
    expect(feed(r, [f1!, f2!])).toHaveLength(1);
    // One fragment beyond the whole share, alone: refused, and the owner's others stay.
    const { r: small } = reassembler({ maxBytes: 1000, maxBytesPerOwner: 600 });
    expect(small.push(f0!, "a")).toBeUndefined();
    expect(small.push(f1!, "a")).toBeUndefined();
    expect(small.drops).toEqual({ "owner-limit": 2 });
    expect(small.pending).toBe(0);
  });

  it("drops a datagram that alone exceeds the byte budget", () => {
    const { r } = reassembler({ maxBytes: 1000 });
    const [f0, f1, f2] = udpFragments();
    expect(feed(r, [f0!, f1!, f2!])).toEqual([]);
    expect(r.drops.limit).toBe(1);
    // Only the last fragment stays charged: another first fragment still fits beside it.
    r.push(edit(f0!, { id: 9 }));
    expect(r.drops.limit).toBe(1);
    expect(r.pending).toBe(2);
    const { r: tiny } = reassembler({ maxBytes: 100 });
    expect(tiny.push(f0!)).toBeUndefined();
    expect(tiny.drops).toEqual({ limit: 1 });
    expect(tiny.pending).toBe(0);
  });

  it("drops fragments that would make the datagram larger than 65535 bytes", () => {
    const { r } = reassembler();
    const [f0, , f2] = udpFragments();
    const eight = f0!.payload.subarray(0, 8);
    // 65512 + 8 payload bytes + a 20-byte header = 65540.
    expect(r.push(edit(f2!, { fragmentOffset: 65512, payload: eight }))).toBeUndefined();
    expect(r.drops).toEqual({ "too-big": 1 });
    expect(r.pending).toBe(0);
    // 65504 + 8 + 20 = 65532 is still acceptable.
    r.push(edit(f2!, { fragmentOffset: 65504, payload: eight }));
    expect(r.pending).toBe(1);
  });

  it("checks the size against the first fragment's header length, options included", () => {
    const { r } = reassembler();
    const [f0, , f2] = udpFragments();
    const body = Buffer.alloc(65504);
    const first = edit(f0!, { headerLength: 24, payload: body });
    const last = edit(f2!, { fragmentOffset: 65504, payload: Buffer.alloc(11) });
    expect(feed(r, [first, last])).toEqual([]);
    expect(r.drops).toEqual({ "too-big": 1 });
    expect(feed(r, [edit(first, { headerLength: 20 }), last])).toHaveLength(1);
  });

  it("drops malformed fragments: unaligned, empty, or contradicting the known end", () => {
    const { r } = reassembler();
    const [f0, f1, f2] = udpFragments();
    expect(r.push(edit(f0!, { payload: f0!.payload.subarray(0, 551) }))).toBeUndefined();
    expect(r.push(edit(f1!, { payload: f1!.payload.subarray(0, 0) }))).toBeUndefined();
    expect(r.drops).toEqual({ malformed: 2 });
    r.push(f2!);
    // A second last fragment ending elsewhere, and a middle one reaching past the end.
    r.push(edit(f2!, { fragmentOffset: f2!.fragmentOffset + 8 }));
    expect(r.drops).toEqual({ malformed: 3 });
    r.push(f2!);
    r.push(edit(f1!, { fragmentOffset: 1104 }));
    expect(r.drops).toEqual({ malformed: 4 });
    // A middle fragment first, then a last fragment that ends before it.
    r.push(edit(f1!, { fragmentOffset: 1216 }));
    r.push(f2!);
    expect(r.drops).toEqual({ malformed: 5 });
    expect(r.pending).toBe(0);
  });

  it("reassembles any seeded re-cut, shuffle and duplication of the captured datagram", () => {
    const whole = feed(reassembler().r, udpFragments())[0]!;
    const template = udpFragments()[0]!;
    const random = new SeededRandom(42);
    for (let round = 0; round < 200; round++) {
      const pieces: Ipv4Packet[] = [];
      for (let start = 0; start < whole.payload.length; ) {
        const end = Math.min(whole.payload.length, start + 8 * (1 + (random.u32() % 40)));
        const moreFragments = end < whole.payload.length;
        pieces.push(
          edit(template, {
            fragmentOffset: start,
            moreFragments,
            payload: whole.payload.subarray(start, end),
          }),
        );
        start = end;
      }
      for (let i = pieces.length - 1; i > 0; i--) {
        const j = random.u32() % (i + 1);
        [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
      }
      if (pieces.length > 1)
        pieces.splice(random.u32() % pieces.length, 0, pieces[random.u32() % (pieces.length - 1)]!);
      const { r } = reassembler();
      const out = feed(r, pieces);
      expect(out, `round ${round}`).toHaveLength(1);
      expectUdpDatagram(out[0]!);
    }
  });
});
