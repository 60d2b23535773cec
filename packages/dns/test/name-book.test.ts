/**
 * The name book: which names each guest was given for an address, with CNAME chains, expiry on
 * an injected clock (TTL clamped to [minTtl, maxTtl]), its bounds, and the server recording
 * every answer it sends — replayed ones too — per client address.
 */
import type { Answer } from "dns-packet";
import * as packet from "dns-packet";
import { describe, expect, it } from "vitest";
import { addressNames, createDns, NameBook } from "../src/index.js";
import { ManualClock } from "./support/clock.js";

const chain: Answer[] = [
  { name: "WWW.Example.com.", type: "CNAME", ttl: 300, data: "edge.cdn.example.net" },
  { name: "edge.cdn.example.net", type: "CNAME", ttl: 300, data: "e1.cdn.example.net" },
  { name: "e1.cdn.example.net", type: "A", ttl: 120, data: "203.0.113.7" },
  { name: "e1.cdn.example.net", type: "A", ttl: 120, data: "203.0.113.8" },
  // Off the chain: not what the guest asked, whatever an upstream put there.
  { name: "bank.example", type: "A", ttl: 120, data: "203.0.113.9" },
];

describe("addressNames", () => {
  it("gives each address on the question's CNAME chain with every name leading to it", () => {
    expect(addressNames("www.example.com", chain)).toEqual([
      {
        address: "203.0.113.7",
        names: ["www.example.com", "edge.cdn.example.net", "e1.cdn.example.net"],
        ttl: 120,
      },
      {
        address: "203.0.113.8",
        names: ["www.example.com", "edge.cdn.example.net", "e1.cdn.example.net"],
        ttl: 120,
      },
    ]);
  });

  it("ends a CNAME loop and writes IPv6 addresses one way", () => {
    const loop: Answer[] = [
      { name: "a.test", type: "CNAME", data: "b.test" },
      { name: "b.test", type: "CNAME", data: "a.test" },
      { name: "b.test", type: "AAAA", ttl: 5, data: "FD00:0:0::7" },
    ];
    expect(addressNames("a.test", loop)).toEqual([
      { address: "fd00::7", names: ["a.test", "b.test"], ttl: 5 },
    ]);
    expect(addressNames("a.test", [{ name: "a.test", type: "TXT", data: "x" }])).toEqual([]);
  });

  it("takes an address with a zone index for what it is, a link of this host, without a throw", () => {
    const book = new NameBook({ clock: new ManualClock() });
    book.record("fe80::3%eth0", { name: "a.test", type: "A" }, [
      { name: "a.test", type: "A", data: "10.0.0.1" },
    ]);
    expect(book.namesFor("fe80::3%eth0", "10.0.0.1")).toEqual(["a.test"]);
    expect(book.namesFor("192.168.65.3", "fe80::1%eth0")).toEqual([]);
  });
});

describe("NameBook", () => {
  it("answers per guest, until the TTL clamped to minTtl is up", () => {
    const clock = new ManualClock();
    const book = new NameBook({ clock, minTtl: 60, maxTtl: 3600 });
    book.record("192.168.65.3", { name: "www.example.com", type: "A" }, chain);
    expect(book.namesFor("192.168.65.3", "203.0.113.8")).toEqual([
      "www.example.com",
      "edge.cdn.example.net",
      "e1.cdn.example.net",
    ]);
    expect(book.namesFor("192.168.65.4", "203.0.113.8")).toEqual([]);
    expect(book.namesFor("192.168.65.3", "203.0.113.9")).toEqual([]);
    // TTL 120 stands (within the clamp).
    clock.advance(119_999);
    expect(book.namesFor("192.168.65.3", "203.0.113.7")).toHaveLength(3);
    clock.advance(1);
    expect(book.namesFor("192.168.65.3", "203.0.113.7")).toEqual([]);
    expect(book.counters()).toMatchObject({ entries: 1, expired: 1, recorded: 2 });
  });

  it("keeps a short TTL for minTtl and a long one for maxTtl only", () => {
    const clock = new ManualClock();
    const book = new NameBook({ clock, minTtl: 60, maxTtl: 600 });
    book.add("10.0.0.2", [{ address: "198.51.100.1", names: ["short.test"], ttl: 1 }]);
    book.add("10.0.0.2", [{ address: "198.51.100.2", names: ["long.test"], ttl: 86_400 }]);
    clock.advance(59_999);
    expect(book.namesFor("10.0.0.2", "198.51.100.1")).toEqual(["short.test"]);
    clock.advance(1);
    expect(book.namesFor("10.0.0.2", "198.51.100.1")).toEqual([]);
    clock.advance(540_000 - 1);
    expect(book.namesFor("10.0.0.2", "198.51.100.2")).toEqual(["long.test"]);
    clock.advance(1);
    expect(book.namesFor("10.0.0.2", "198.51.100.2")).toEqual([]);
  });

  it("renews a name asked again, and lets each name of an address lapse on its own", () => {
    const clock = new ManualClock();
    const book = new NameBook({ clock, minTtl: 60 });
    book.add("10.0.0.2", [{ address: "198.51.100.1", names: ["a.test"], ttl: 60 }]);
    clock.advance(30_000);
    book.add("10.0.0.2", [{ address: "198.51.100.1", names: ["b.test"], ttl: 60 }]);
    clock.advance(30_000);
    expect(book.namesFor("10.0.0.2", "198.51.100.1")).toEqual(["b.test"]);
    book.add("10.0.0.2", [{ address: "198.51.100.1", names: ["b.test"], ttl: 60 }]);
    clock.advance(59_000);
    expect(book.namesFor("10.0.0.2", "198.51.100.1")).toEqual(["b.test"]);
  });

  it("is bounded: least recently answered address out, and names per address", () => {
    const clock = new ManualClock();
    const book = new NameBook({ clock, maxEntries: 2, maxNamesPerAddress: 2 });
    book.add("10.0.0.2", [{ address: "198.51.100.1", names: ["one.test"], ttl: 60 }]);
    book.add("10.0.0.2", [{ address: "198.51.100.2", names: ["two.test"], ttl: 60 }]);
    book.add("10.0.0.2", [{ address: "198.51.100.1", names: ["one.test"], ttl: 60 }]);
    book.add("10.0.0.3", [{ address: "198.51.100.3", names: ["three.test"], ttl: 60 }]);
    expect(book.namesFor("10.0.0.2", "198.51.100.2")).toEqual([]);
    expect(book.namesFor("10.0.0.2", "198.51.100.1")).toEqual(["one.test"]);
    for (const n of ["x.wild.test", "y.wild.test", "z.wild.test"]) {
      book.add("10.0.0.3", [{ address: "198.51.100.3", names: [n], ttl: 60 }]);
    }
    expect(book.namesFor("10.0.0.3", "198.51.100.3")).toEqual(["y.wild.test", "z.wild.test"]);
    expect(book.counters()).toMatchObject({ entries: 2, evicted: { entries: 1 }, namesDropped: 2 });
  });

  it("is bounded by bytes", () => {
    const book = new NameBook({ clock: new ManualClock(), maxBytes: 20_000 });
    for (let i = 0; i < 200; i++) {
      book.add("10.0.0.2", [{ address: `198.51.100.${i}`, names: [`${"n".repeat(60)}${i}.test`], ttl: 60 }]);
    }
    const c = book.counters();
    expect(c.bytes).toBeLessThanOrEqual(20_000);
    expect(c.entries + c.evicted.bytes).toBe(200);
    expect(book.namesFor("10.0.0.2", "198.51.100.199")).toHaveLength(1);
    expect(book.namesFor("10.0.0.2", "198.51.100.0")).toEqual([]);
  });
});

describe("the server records what it answers", () => {
  const query = (id: number, name: string, type: packet.RecordType = "A", udpSize?: number) =>
    packet.encode({
      type: "query",
      id,
      questions: [{ name, type }],
      ...(udpSize
        ? { additionals: [{ type: "OPT", name: ".", udpPayloadSize: udpSize } as packet.OptAnswer] }
        : {}),
    });

  it("per client address, replayed answers included, and only answers the client was sent", async () => {
    const clock = new ManualClock();
    const dns = createDns({
      records: [
        { name: "api.test", type: "CNAME", data: "db.test" },
        { name: "db.test", type: "A", data: "10.0.0.7" },
        { name: "db.test", type: "AAAA", data: "fd00::7" },
        ...Array.from({ length: 40 }, (_, i) => ({
          name: "many.test",
          type: "A" as const,
          data: `10.1.0.${i}`,
        })),
      ],
      host: false,
      clock,
    });
    await dns.handler.handle(query(1, "api.test"), "192.168.65.3:40000", "udp");
    expect(dns.names?.namesFor("192.168.65.3", "10.0.0.7")).toEqual(["api.test", "db.test"]);
    expect(dns.names?.namesFor("192.168.65.4", "10.0.0.7")).toEqual([]);
    // The same bytes from another guest are replayed, and still recorded for that guest.
    await dns.handler.handle(query(1, "api.test"), "192.168.65.4:40000", "udp");
    expect(dns.handler.queryLog().at(-1)?.cached).toBe(true);
    expect(dns.names?.namesFor("192.168.65.4", "10.0.0.7")).toEqual(["api.test", "db.test"]);
    await dns.handler.handle(query(2, "db.test", "AAAA"), "192.168.65.3:40000", "tcp");
    expect(dns.names?.namesFor("192.168.65.3", "FD00::7")).toEqual(["db.test"]);
    // 40 addresses do not fit 512 bytes: sent truncated, so nothing was given yet; over TCP it is.
    await dns.handler.handle(query(3, "many.test"), "192.168.65.3:40001", "udp");
    expect(dns.names?.namesFor("192.168.65.3", "10.1.0.1")).toEqual([]);
    await dns.handler.handle(query(3, "many.test"), "192.168.65.3:40001", "tcp");
    expect(dns.names?.namesFor("192.168.65.3", "10.1.0.1")).toEqual(["many.test"]);
    expect(dns.handler.counters().names).toMatchObject({ recorded: 1 + 1 + 1 + 40 });
  });

  it("can be left out", async () => {
    const dns = createDns({ hostAddress: "10.0.0.1", host: false, names: false });
    await dns.handler.handle(query(1, "host.docker.internal"), "192.168.65.3:1", "udp");
    expect(dns.names).toBeUndefined();
    expect(dns.handler.counters().names).toBeUndefined();
  });
});
