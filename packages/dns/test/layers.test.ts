/** The local layers on their own: fixed records with wildcards and CNAMEs, the live registry. */
import { describe, expect, it } from "vitest";
import { createFixedLayer, createRegistry, createResolver, type Resolution } from "../src/index.js";
import { ManualClock } from "./support/clock.js";

const fixed = createFixedLayer({
  hostAddress: "192.168.65.254",
  gatewayAddress: "192.168.65.1",
  records: [
    { name: "*.test.internal", type: "A", data: "10.0.0.7" },
    { name: "*.deep.test.internal", type: "A", data: "10.0.0.8" },
    { name: "db.test.internal", type: "AAAA", data: "fd00::7" },
    { name: "alias.internal", type: "CNAME", data: "db.test.internal" },
    { name: "loop1.internal", type: "CNAME", data: "loop2.internal" },
    { name: "loop2.internal", type: "CNAME", data: "loop1.internal" },
    { name: "svc.internal", type: "TXT", data: ["a", "b"] },
    { name: "_http._tcp.svc.internal", type: "SRV", data: { port: 8080, target: "db.test.internal" } },
    { name: "svc.internal", type: "MX", data: { exchange: "mx.internal" } },
    { name: "7.0.0.10.in-addr.arpa", type: "PTR", data: "db.test.internal" },
  ],
});
const ask = (name: string, type = "A") =>
  fixed.resolve({ name, type: type as "A" }) as Resolution | undefined;

describe("fixed layer", () => {
  it("answers host.docker.internal and gateway.docker.internal, authoritatively", () => {
    expect(ask("host.docker.internal")).toMatchObject({
      rcode: "NOERROR",
      authoritative: true,
      answers: [{ type: "A", data: "192.168.65.254", name: "host.docker.internal" }],
    });
    expect(ask("Gateway.Docker.Internal.")?.answers).toMatchObject([{ data: "192.168.65.1" }]);
  });

  it("says NODATA for a known name without the type, and passes unknown names on", () => {
    expect(ask("host.docker.internal", "AAAA")).toMatchObject({ rcode: "NOERROR", answers: [] });
    expect(ask("elsewhere.example")).toBeUndefined();
  });

  it("matches wildcards, the longest zone first, and an exact name over a wildcard", () => {
    expect(ask("anything.test.internal")?.answers).toMatchObject([{ data: "10.0.0.7" }]);
    expect(ask("a.b.deep.test.internal")?.answers).toMatchObject([{ data: "10.0.0.8" }]);
    // db.test.internal exists exactly (AAAA only): NODATA for A, not the wildcard.
    expect(ask("db.test.internal")?.answers).toEqual([]);
    expect(ask("test.internal")).toBeUndefined();
  });

  it("follows CNAME chains inside the fixed set and stops at a loop", () => {
    expect(ask("alias.internal", "AAAA")?.answers).toMatchObject([
      { type: "CNAME", name: "alias.internal", data: "db.test.internal" },
      { type: "AAAA", name: "db.test.internal", data: "fd00::7" },
    ]);
    expect(ask("alias.internal", "CNAME")?.answers).toHaveLength(1);
    expect(ask("loop1.internal")?.answers.length).toBe(8);
  });

  it("serves TXT, SRV, MX and PTR records", () => {
    expect(ask("svc.internal", "TXT")?.answers).toMatchObject([{ data: ["a", "b"] }]);
    expect(ask("_http._tcp.svc.internal", "SRV")?.answers).toMatchObject([
      { data: { port: 8080, target: "db.test.internal", priority: 0, weight: 0 } },
    ]);
    expect(ask("svc.internal", "MX")?.answers).toMatchObject([{ data: { exchange: "mx.internal" } }]);
    expect(ask("7.0.0.10.in-addr.arpa", "PTR")?.answers).toMatchObject([{ data: "db.test.internal" }]);
  });

  it("rejects records that do not parse", () => {
    expect(() => createFixedLayer({ records: [{ name: "x", type: "A", data: "::1" }] })).toThrow(/IPv4/);
    expect(() => createFixedLayer({ hostAddress: "nope" })).toThrow(/not an IP/);
  });
});

describe("registry layer", () => {
  it("registers, answers, expires and removes names", () => {
    const clock = new ManualClock();
    const reg = createRegistry({ clock, subnets: ["192.168.65.0/24"] });
    reg.register("web.containers.internal", "192.168.65.7", { ttlSeconds: 30 });
    reg.register("web.containers.internal", "fd00::7");
    reg.register("db", "192.168.65.8");
    const a = reg.resolve({ name: "web.containers.internal", type: "A" }) as Resolution;
    expect(a.answers).toMatchObject([{ type: "A", data: "192.168.65.7", ttl: 5 }]);
    expect(
      (reg.resolve({ name: "web.containers.internal", type: "AAAA" }) as Resolution).answers,
    ).toMatchObject([{ data: "fd00::7" }]);
    expect((reg.resolve({ name: "web.containers.internal", type: "TXT" }) as Resolution).answers).toEqual([]);
    clock.advance(28_000);
    expect((reg.resolve({ name: "web.containers.internal", type: "A" }) as Resolution).answers).toMatchObject(
      [{ ttl: 2 }],
    );
    clock.advance(2_000);
    expect((reg.resolve({ name: "web.containers.internal", type: "A" }) as Resolution).answers).toEqual([]);
    expect(reg.remove("web.containers.internal", "fd00:0::7")).toBe(true);
    expect(reg.resolve({ name: "web.containers.internal", type: "A" })).toBeUndefined();
    expect(reg.entries()).toMatchObject([{ name: "db", address: "192.168.65.8" }]);
  });

  it("answers PTR in its subnets, NXDOMAIN for unknown addresses there, and passes others on", () => {
    const reg = createRegistry({ subnets: ["192.168.65.0/24", "fd00::/64"] });
    reg.register("db.containers.internal", "192.168.65.8");
    reg.register("v6.containers.internal", "fd00::8");
    expect(
      (reg.resolve({ name: "8.65.168.192.in-addr.arpa", type: "PTR" }) as Resolution).answers,
    ).toMatchObject([{ type: "PTR", data: "db.containers.internal" }]);
    const v6 = `8.0.0.0.${"0.".repeat(26)}d.f.ip6.arpa`;
    expect((reg.resolve({ name: v6, type: "PTR" }) as Resolution).answers).toMatchObject([
      { data: "v6.containers.internal" },
    ]);
    expect(reg.resolve({ name: "9.65.168.192.in-addr.arpa", type: "PTR" })).toMatchObject({
      rcode: "NXDOMAIN",
      authoritative: true,
    });
    expect(reg.resolve({ name: "1.0.0.10.in-addr.arpa", type: "PTR" })).toBeUndefined();
  });
});

describe("resolver", () => {
  it("refuses zone transfers instead of passing them to a layer", async () => {
    const r = createResolver([fixed]);
    for (const type of ["AXFR", "IXFR"] as const) {
      expect(await r.resolve({ name: "host.docker.internal", type })).toMatchObject({
        rcode: "REFUSED",
        layer: "none",
        answers: [],
      });
    }
  });

  it("takes the first layer that claims the name and says which one answered", async () => {
    const reg = createRegistry();
    reg.register("host.docker.internal", "10.9.9.9");
    reg.register("only.registry", "10.9.9.8");
    const r = createResolver([fixed, reg]);
    expect(await r.resolve({ name: "host.docker.internal", type: "A" })).toMatchObject({
      layer: "fixed",
      answers: [{ data: "192.168.65.254" }],
    });
    expect(await r.resolve({ name: "only.registry", type: "A" })).toMatchObject({ layer: "registry" });
    // A fixed alias of a registered name is finished through the registry.
    const aliased = createResolver([
      createFixedLayer({ records: [{ name: "www.internal", type: "CNAME", data: "only.registry" }] }),
      reg,
    ]);
    expect(await aliased.resolve({ name: "www.internal", type: "A" })).toMatchObject({
      layer: "fixed",
      rcode: "NOERROR",
      answers: [
        { type: "CNAME", name: "www.internal", data: "only.registry" },
        { type: "A", name: "only.registry", data: "10.9.9.8" },
      ],
    });
    expect((await aliased.resolve({ name: "www.internal", type: "AAAA" })).answers).toHaveLength(1);
    expect(await r.resolve({ name: "nobody.example", type: "A" })).toMatchObject({
      layer: "none",
      rcode: "REFUSED",
    });
  });

  it("gives local negative answers an SOA, so clients may cache them for a few seconds", async () => {
    const r = createResolver([fixed, createRegistry({ subnets: ["192.168.65.0/24"] })]);
    const nodata = await r.resolve({ name: "host.docker.internal", type: "AAAA" });
    expect(nodata).toMatchObject({
      rcode: "NOERROR",
      answers: [],
      authorities: [{ type: "SOA", name: "docker.internal", ttl: 5, data: { minimum: 5 } }],
    });
    const nx = await r.resolve({ name: "9.65.168.192.in-addr.arpa", type: "PTR" });
    expect(nx).toMatchObject({
      rcode: "NXDOMAIN",
      authorities: [{ type: "SOA", name: "65.168.192.in-addr.arpa" }],
    });
    // Positive answers carry none.
    expect((await r.resolve({ name: "host.docker.internal", type: "A" })).authorities).toEqual([]);
  });
});
