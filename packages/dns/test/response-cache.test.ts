/**
 * Repeated identical queries answered from the encoded responses the handler keeps: what may be
 * kept (fixed names, upstream answers), what never is (registry names), for how long, and that
 * each client still gets its own id, counters and log entry.
 */
import * as packet from "dns-packet";
import { describe, expect, it } from "vitest";
import { createDns, type Layer, type LookupFunction } from "../src/index.js";
import { ManualClock } from "./support/clock.js";

function query(id: number, name: string, type: packet.RecordType = "A", udpSize?: number): Buffer {
  return packet.encode({
    type: "query",
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type, class: "IN" }],
    ...(udpSize
      ? { additionals: [{ type: "OPT", name: ".", udpPayloadSize: udpSize } as packet.OptAnswer] }
      : {}),
  });
}

/** The host layer's OS resolver, counted: every call is a query that was resolved, not replayed. */
function countingLookup(): { lookup: LookupFunction; calls: () => number } {
  let calls = 0;
  return {
    calls: () => calls,
    lookup: async () => {
      calls++;
      throw Object.assign(new Error("not found"), { code: "ENOTFOUND" });
    },
  };
}

function dnsWith(lookup: LookupFunction, clock: ManualClock) {
  return createDns({
    hostAddress: "192.168.65.254",
    records: [{ name: "big.test", type: "TXT", data: Array.from({ length: 14 }, () => "x".repeat(60)) }],
    host: { mode: "os", nameservers: [], lookup },
    clock,
    server: { responseCache: { lifetimeMs: 1000 } },
  });
}

describe("response cache", () => {
  it("replay() answers at once only what handle() would replay, and counts it the same", async () => {
    const clock = new ManualClock();
    const dns = dnsWith(countingLookup().lookup, clock);
    // Nothing answered yet: nothing to replay, and nothing counted.
    expect(dns.handler.replay(query(1, "host.docker.internal"), "a", "udp")).toBeUndefined();
    expect(dns.handler.counters().queries.udp).toBe(0);
    const first = await dns.handler.handle(query(1, "host.docker.internal"), "a", "udp");
    const again = dns.handler.replay(query(7, "host.docker.internal"), "b:53", "udp");
    expect(again!.readUInt16BE(0)).toBe(7);
    expect(again!.subarray(2).equals(first!.subarray(2))).toBe(true);
    // The same question over TCP was never answered over TCP: its limits differ, so no replay.
    expect(dns.handler.replay(query(8, "host.docker.internal"), "b:53", "tcp")).toBeUndefined();
    // Once the lifetime is over, it must be resolved again.
    clock.advance(1001);
    expect(dns.handler.replay(query(9, "host.docker.internal"), "b:53", "udp")).toBeUndefined();
    expect(dns.handler.counters()).toMatchObject({ queries: { udp: 2 }, layers: { fixed: 2 } });
    expect(dns.handler.queryLog().map((e) => [e.client, e.cached])).toEqual([
      ["a", false],
      ["b:53", true],
    ]);
  });

  it("answers a repeated query with the same bytes under the new id, counted and logged", async () => {
    const clock = new ManualClock();
    const dns = dnsWith(countingLookup().lookup, clock);
    const first = await dns.handler.handle(query(1, "host.docker.internal"), "a", "udp");
    const again = await dns.handler.handle(query(2, "host.docker.internal"), "b", "udp");
    expect(again!.readUInt16BE(0)).toBe(2);
    expect(again!.subarray(2).equals(first!.subarray(2))).toBe(true);
    expect(dns.handler.counters()).toMatchObject({
      queries: { udp: 2 },
      rcodes: { NOERROR: 2 },
      layers: { fixed: 2 },
    });
    expect(dns.handler.queryLog().map((e) => [e.client, e.layer, e.answers])).toEqual([
      ["a", "fixed", ["A 192.168.65.254"]],
      ["b", "fixed", ["A 192.168.65.254"]],
    ]);
  });

  it("keeps upstream answers for its lifetime only", async () => {
    const clock = new ManualClock();
    const { lookup, calls } = countingLookup();
    const dns = createDns({ host: { mode: "os", nameservers: [], lookup, osTtl: 0 }, clock });
    await dns.handler.handle(query(1, "gone.test"), "a", "udp");
    clock.advance(999);
    const kept = await dns.handler.handle(query(2, "gone.test"), "a", "udp");
    expect(kept!.readUInt16BE(2) & 0xf).toBe(3); // NXDOMAIN
    expect(calls()).toBe(1);
    expect(dns.handler.queryLog().map((e) => e.cached)).toEqual([false, true]);
    clock.advance(1);
    await dns.handler.handle(query(3, "gone.test"), "a", "udp");
    expect(calls()).toBe(2);
  });

  it("never keeps registry answers, and forgets the rest when a name is registered or removed", async () => {
    const clock = new ManualClock();
    const dns = dnsWith(countingLookup().lookup, clock);
    const rcode = async (id: number) =>
      (await dns.handler.handle(query(id, "web.test"), "a", "udp"))!.readUInt16BE(2) & 0xf;
    expect(await rcode(1)).toBe(3); // NXDOMAIN from the host layer, kept
    dns.registry.register("web.test", "192.168.65.9");
    expect(await rcode(2)).toBe(0);
    dns.registry.remove("web.test");
    expect(await rcode(3)).toBe(3);
  });

  it("tells clients apart by what changes the answer: the UDP size, the transport, the question", async () => {
    const clock = new ManualClock();
    const dns = dnsWith(countingLookup().lookup, clock);
    const small = await dns.handler.handle(query(1, "big.test", "TXT"), "a", "udp");
    const large = await dns.handler.handle(query(2, "big.test", "TXT", 4096), "a", "udp");
    const tcp = await dns.handler.handle(query(3, "big.test", "TXT"), "a", "tcp");
    const tc = (b: Buffer | undefined) => (b!.readUInt16BE(2) & 0x0200) !== 0;
    expect([tc(small), tc(large), tc(tcp)]).toEqual([true, false, false]);
    const aaaa = await dns.handler.handle(query(4, "host.docker.internal", "AAAA"), "a", "udp");
    expect(packet.decode(aaaa!).answers).toEqual([]);
  });

  it("replays nothing a volatile layer before it may claim, nor a chain that went through live data", async () => {
    const clock = new ManualClock();
    const { lookup, calls } = countingLookup();
    const leases: Layer = {
      name: "leases",
      resolve: () => undefined,
      volatile: (q) => !q.name.includes("."),
    };
    const dns = createDns({
      records: [{ name: "alias.test", type: "CNAME", data: "web.internal" }],
      localLayers: [leases],
      host: { mode: "os", nameservers: [], lookup, osTtl: 0 },
      clock,
    });
    await dns.handler.handle(query(1, "myvm"), "a", "udp");
    await dns.handler.handle(query(2, "myvm"), "a", "udp");
    expect(calls()).toBe(2);
    dns.registry.register("web.internal", "192.168.65.9", { ttlSeconds: 1 });
    const first = await dns.handler.handle(query(3, "alias.test"), "a", "udp");
    expect(packet.decode(first!).answers?.map((a) => (a as { data: unknown }).data)).toEqual([
      "web.internal",
      "192.168.65.9",
    ]);
    // The registration lapses without notice; the alias must not keep answering its address.
    clock.advance(1000);
    const later = await dns.handler.handle(query(4, "alias.test"), "a", "udp");
    expect(packet.decode(later!).answers?.map((a) => (a as { data: unknown }).data)).toEqual([
      "web.internal",
    ]);
  });

  it("never replays past a record's TTL: TTL 0 is not kept", async () => {
    const clock = new ManualClock();
    const dns = createDns({
      records: [{ name: "zero.test", type: "A", data: "10.0.0.1", ttl: 0 }],
      host: false,
      clock,
    });
    await dns.handler.handle(query(1, "zero.test"), "a", "udp");
    await dns.handler.handle(query(2, "zero.test"), "a", "udp");
    expect(dns.handler.queryLog().map((e) => e.cached)).toEqual([false, false]);
  });

  it("can be turned off", async () => {
    const clock = new ManualClock();
    const { lookup, calls } = countingLookup();
    const dns = createDns({
      host: { mode: "os", nameservers: [], lookup, osTtl: 0 },
      clock,
      server: { responseCache: { maxEntries: 0 } },
    });
    await dns.handler.handle(query(1, "gone.test"), "a", "udp");
    await dns.handler.handle(query(2, "gone.test"), "a", "udp");
    expect(calls()).toBe(2);
  });
});

describe("response cache bounds", () => {
  it("holds no more than maxBytes of responses, oldest out first", async () => {
    const clock = new ManualClock();
    const dns = createDns({
      records: [{ name: "*.wild.test", type: "TXT", data: Array.from({ length: 8 }, () => "w".repeat(100)) }],
      host: false,
      clock,
      server: { responseCache: { maxBytes: 20_000 } },
    });
    for (let i = 0; i < 40; i++)
      await dns.handler.handle(query(i, `n${i}.wild.test`, "TXT", 4096), "a", "udp");
    const c = dns.handler.counters().responseCache;
    expect(c.bytes).toBeLessThanOrEqual(20_000);
    expect(c.entries).toBeGreaterThan(0);
    expect(c.entries + c.evicted.bytes).toBe(40);
    // The newest is replayed, the oldest was let go and is resolved again.
    await dns.handler.handle(query(100, "n39.wild.test", "TXT", 4096), "a", "udp");
    await dns.handler.handle(query(101, "n0.wild.test", "TXT", 4096), "a", "udp");
    expect(
      dns.handler
        .queryLog()
        .slice(-2)
        .map((e) => e.cached),
    ).toEqual([true, false]);
  });
});
