/**
 * The host layer's OS mode: A/AAAA through dns.lookup. Only "localhost" goes to the real OS
 * resolver (answered from /etc/hosts, never the network); the NXDOMAIN and NODATA mappings use an
 * injected lookup that fails the way getaddrinfo does.
 */
import { createSocket, type Socket } from "node:dgram";
import * as packet from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHostLayer, type LookupFunction, type Resolution, type Upstream } from "../src/index.js";
import { ManualClock } from "./support/clock.js";

const failing =
  (code: string): LookupFunction =>
  async () => {
    throw Object.assign(new Error(`getaddrinfo ${code}`), { code });
  };

/** A host layer whose getaddrinfo never returns; `calls()` counts the lookups started. */
function hanging(o: { timeoutMs: number; maxInflight?: number }) {
  let calls = 0;
  const host = createHostLayer({
    mode: "os",
    nameservers: [],
    ...o,
    lookup: () => {
      calls++;
      return new Promise(() => {});
    },
  });
  return { host, calls: () => calls };
}

describe("host layer, OS resolver", () => {
  it("answers localhost from the OS resolver with its TTL", async () => {
    const host = createHostLayer({ mode: "os", nameservers: [], osTtl: 7 });
    const r = (await host.resolve({ name: "localhost", type: "A" })) as Resolution;
    expect(r).toMatchObject({ rcode: "NOERROR", answers: [{ type: "A", data: "127.0.0.1", ttl: 7 }] });
    host.close?.();
  });

  it("maps ENOTFOUND to NXDOMAIN, ENODATA and the other family to NODATA, and other errors to a rejection", async () => {
    const nx = createHostLayer({ mode: "os", nameservers: [], lookup: failing("ENOTFOUND") });
    expect(await nx.resolve({ name: "a.test", type: "A" })).toMatchObject({ rcode: "NXDOMAIN" });
    const nodata = createHostLayer({ mode: "os", nameservers: [], lookup: failing("ENODATA") });
    expect(await nodata.resolve({ name: "a.test", type: "A" })).toMatchObject({
      rcode: "NOERROR",
      answers: [],
    });
    const v4only = createHostLayer({
      mode: "os",
      nameservers: [],
      lookup: async () => [{ address: "10.1.2.3", family: 4 }],
    });
    expect(await v4only.resolve({ name: "a.test", type: "AAAA" })).toMatchObject({
      rcode: "NOERROR",
      answers: [],
    });
    const again = createHostLayer({ mode: "os", nameservers: [], lookup: failing("EAI_AGAIN") });
    await expect(again.resolve({ name: "a.test", type: "A" })).rejects.toMatchObject({
      code: "ERR_DESKTOPD_DNS_UPSTREAM",
      reason: "lookup",
    });
  });

  it("gives up on a lookup that never returns at the configured bound, and shares concurrent lookups", async () => {
    const { host, calls } = hanging({ timeoutMs: 50 });
    const both = [
      host.resolve({ name: "hang.test", type: "A" }),
      host.resolve({ name: "hang.test", type: "AAAA" }),
    ];
    for (const r of both) await expect(r).rejects.toMatchObject({ reason: "timeout" });
    expect(calls()).toBe(1);
  });

  it("fails new names at once while maxInflight lookups are outstanding, even past their deadline", async () => {
    const { host, calls } = hanging({ timeoutMs: 20, maxInflight: 2 });
    const a = host.resolve({ name: "a.test", type: "A" });
    const b = host.resolve({ name: "B.test", type: "A" });
    await expect(host.resolve({ name: "c.test", type: "A" })).rejects.toMatchObject({ reason: "busy" });
    await expect(a).rejects.toMatchObject({ reason: "timeout" });
    await expect(b).rejects.toMatchObject({ reason: "timeout" });
    // getaddrinfo still holds its threads: new names stay refused, a pending name is shared.
    await expect(host.resolve({ name: "d.test", type: "A" })).rejects.toMatchObject({ reason: "busy" });
    await expect(host.resolve({ name: "b.test", type: "AAAA" })).rejects.toMatchObject({ reason: "timeout" });
    expect(calls()).toBe(2);
  });

  it("caches OS answers for the OS TTL, negative ones too", async () => {
    const clock = new ManualClock();
    let calls = 0;
    const host = createHostLayer({
      mode: "os",
      nameservers: [],
      osTtl: 10,
      clock,
      lookup: async () => {
        calls++;
        throw Object.assign(new Error("nx"), { code: "ENOTFOUND" });
      },
    });
    await host.resolve({ name: "a.test", type: "A" });
    clock.advance(9_000);
    expect(await host.resolve({ name: "a.test", type: "A" })).toMatchObject({
      rcode: "NXDOMAIN",
      cached: true,
    });
    expect(calls).toBe(1);
    clock.advance(1_000);
    await host.resolve({ name: "a.test", type: "A" });
    expect(calls).toBe(2);
  });
});

describe("host layer, a name getaddrinfo cannot find", () => {
  let nameserver: Socket;
  let server: Upstream;
  beforeAll(async () => {
    // A nameserver that knows txt-only.test (a TXT record, no address), dns-only.test (an
    // address the OS resolver did not give) and nothing else; silent.test it never answers.
    nameserver = createSocket("udp4");
    nameserver.on("message", (msg, from) => {
      const query = packet.decode(msg);
      const question = query.questions![0]!;
      if (question.name === "silent.test") return;
      const soa = {
        name: "test",
        type: "SOA" as const,
        ttl: 60,
        data: {
          mname: "ns.test",
          rname: "admin.test",
          serial: 1,
          refresh: 60,
          retry: 60,
          expire: 60,
          minimum: 30,
        },
      };
      const known = question.name === "txt-only.test" || question.name === "dns-only.test";
      const answers =
        question.name === "dns-only.test" && question.type === "A"
          ? [{ name: "dns-only.test", type: "A" as const, ttl: 60, data: "6.6.6.6" }]
          : [];
      const reply = packet.encode({
        id: query.id,
        type: "response",
        flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | (known ? 0 : 3),
        questions: [question],
        answers,
        authorities: answers.length === 0 ? [soa] : [],
      });
      nameserver.send(reply, from.port, from.address);
    });
    await new Promise<void>((resolve) => nameserver.bind(0, "127.0.0.1", resolve));
    server = { host: "127.0.0.1", port: nameserver.address().port };
  });
  afterAll(() => nameserver?.close());

  const layer = () =>
    createHostLayer({ mode: "os", nameservers: [server], lookup: failing("ENOTFOUND"), timeoutMs: 300 });

  it("is NODATA when the nameservers know it with other types, and carries their SOA", async () => {
    const r = (await layer().resolve({ name: "txt-only.test", type: "A" })) as Resolution;
    expect(r).toMatchObject({ rcode: "NOERROR", answers: [], authorities: [{ type: "SOA", name: "test" }] });
  });

  it("stays NXDOMAIN when they do not know it, when they do not answer, and when only they have addresses", async () => {
    for (const name of ["gone.test", "silent.test", "dns-only.test"]) {
      const r = (await layer().resolve({ name, type: "A" })) as Resolution;
      expect([name, r.rcode, r.answers]).toEqual([name, "NXDOMAIN", []]);
    }
  });
});
