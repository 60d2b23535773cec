/** TTL countdown, negative caching from the SOA (RFC 2308), limits, and what is never cached. */
import { describe, expect, it } from "vitest";
import { DnsCache, type Resolution } from "../src/index.js";
import { ManualClock } from "./support/clock.js";

const q = { name: "Name.Test", type: "A" as const };
const positive = (ttl: number): Resolution => ({
  rcode: "NOERROR",
  answers: [
    { name: "name.test", type: "A", ttl, data: "1.2.3.4" },
    { name: "name.test", type: "A", ttl: ttl + 100, data: "1.2.3.5" },
  ],
  authorities: [],
  additionals: [],
  authoritative: false,
});
const soa = (ttl: number, minimum: number) => ({
  name: "test",
  type: "SOA" as const,
  ttl,
  data: { mname: "ns.test", rname: "root.test", minimum },
});

describe("DnsCache", () => {
  it("keeps an answer for its smallest TTL and counts the TTLs down", () => {
    const clock = new ManualClock();
    const cache = new DnsCache({ clock });
    const key = DnsCache.key("s", q);
    cache.set(key, positive(60));
    clock.advance(20_500);
    const hit = cache.get(DnsCache.key("s", { name: "name.test.", type: "A" }));
    expect(hit?.cached).toBe(true);
    expect(hit?.answers.map((a) => (a as { ttl: number }).ttl)).toEqual([40, 140]);
    clock.advance(39_500);
    expect(cache.get(key)).toBeUndefined();
    expect([cache.hits, cache.misses]).toEqual([1, 1]);
  });

  it("caches NXDOMAIN and NODATA for min(SOA TTL, SOA minimum), or the default without an SOA", () => {
    const clock = new ManualClock();
    const cache = new DnsCache({ clock, negativeTtl: 5 });
    const nx: Resolution = { ...positive(0), rcode: "NXDOMAIN", answers: [], authorities: [soa(300, 10)] };
    cache.set("nx", nx);
    const nodata: Resolution = { ...positive(0), answers: [] };
    cache.set("nodata", nodata);
    clock.advance(4_000);
    expect(cache.get("nx")?.rcode).toBe("NXDOMAIN");
    expect(cache.get("nodata")?.answers).toEqual([]);
    clock.advance(1_000);
    expect(cache.get("nodata")).toBeUndefined();
    clock.advance(5_000);
    expect(cache.get("nx")).toBeUndefined();
  });

  it("never keeps SERVFAIL or TTL 0, caps TTLs, and evicts the oldest entry beyond its size", () => {
    const clock = new ManualClock();
    const cache = new DnsCache({ clock, maxTtl: 10, maxEntries: 2 });
    cache.set("fail", { ...positive(60), rcode: "SERVFAIL" });
    cache.set("zero", positive(0));
    expect(cache.size).toBe(0);
    cache.set("a", positive(3600));
    cache.set("b", positive(3600));
    cache.set("c", positive(3600));
    expect(cache.get("a")).toBeUndefined();
    clock.advance(4_000);
    // Handed out no longer than it is kept.
    expect(cache.get("c")?.answers.map((a) => (a as { ttl: number }).ttl)).toEqual([6, 6]);
    clock.advance(6_000);
    expect(cache.get("c")).toBeUndefined();
  });
});

describe("DnsCache bounds by bytes", () => {
  const txt = (name: string, bytes: number): Resolution => ({
    rcode: "NOERROR",
    answers: [
      {
        name,
        type: "TXT",
        ttl: 300,
        data: ["y".repeat(Math.min(255, bytes)), ..."z".repeat(bytes).match(/.{1,255}/g)!],
      },
    ],
    authorities: [],
    additionals: [],
    authoritative: false,
  });

  it("charges an answer at least its size in bytes", () => {
    const cache = new DnsCache({ clock: new ManualClock() });
    cache.set("small", positive(60));
    const small = cache.bytes;
    cache.set("large", txt("large.test", 20_000));
    expect(small).toBeGreaterThan(0);
    expect(cache.bytes - small).toBeGreaterThan(20_000);
  });

  it("evicts the least recently used beyond maxBytes, and counts it", () => {
    const one = new DnsCache({ clock: new ManualClock() });
    one.set("a", txt("a.test", 10_000));
    // Room for four such answers, not five.
    const maxBytes = Math.floor(one.bytes * 4.5);
    const cache = new DnsCache({ clock: new ManualClock(), maxBytes });
    for (const k of ["a", "b", "c"]) cache.set(k, txt(`${k}.test`, 10_000));
    // "a" is used, so "b" is now the least recently used.
    expect(cache.get("a")).toBeDefined();
    cache.set("d", txt("d.test", 10_000));
    cache.set("e", txt("e.test", 10_000));
    expect(["a", "b", "c", "d", "e"].filter((k) => cache.get(k) !== undefined)).toEqual(["a", "c", "d", "e"]);
    expect(cache.bytes).toBeLessThanOrEqual(maxBytes);
    expect(cache.counters()).toMatchObject({ entries: 4, evicted: { entries: 0, bytes: 1 } });
  });

  it("does not keep an answer larger than maxEntryBytes, nor drop others for it", () => {
    const cache = new DnsCache({ clock: new ManualClock(), maxEntryBytes: 16_384 });
    cache.set("small", positive(60));
    cache.set("huge", txt("huge.test", 60_000));
    expect(cache.get("huge")).toBeUndefined();
    expect(cache.get("small")).toBeDefined();
    expect(cache.counters()).toMatchObject({ entries: 1, tooLarge: 1, evicted: { entries: 0, bytes: 0 } });
  });

  it("counts expired entries apart from evictions", () => {
    const clock = new ManualClock();
    const cache = new DnsCache({ clock });
    cache.set("a", positive(10));
    clock.advance(10_000);
    expect(cache.get("a")).toBeUndefined();
    expect(cache.counters()).toMatchObject({ entries: 0, bytes: 0, expired: 1, hits: 0, misses: 1 });
  });
});
