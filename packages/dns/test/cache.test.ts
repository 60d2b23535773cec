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
