/**
 * The host layer's OS mode: A/AAAA through dns.lookup. Only "localhost" goes to the real OS
 * resolver (answered from /etc/hosts, never the network); the NXDOMAIN and NODATA mappings use an
 * injected lookup that fails the way getaddrinfo does.
 */
import { describe, expect, it } from "vitest";
import { createHostLayer, type LookupFunction, type Resolution } from "../src/index.js";
import { ManualClock } from "./support/clock.js";

const failing =
  (code: string): LookupFunction =>
  async () => {
    throw Object.assign(new Error(`getaddrinfo ${code}`), { code });
  };

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
    let calls = 0;
    const host = createHostLayer({
      mode: "os",
      nameservers: [],
      timeoutMs: 50,
      lookup: () => {
        calls++;
        return new Promise(() => {});
      },
    });
    const both = [
      host.resolve({ name: "hang.test", type: "A" }),
      host.resolve({ name: "hang.test", type: "AAAA" }),
    ];
    for (const r of both) await expect(r).rejects.toMatchObject({ reason: "timeout" });
    expect(calls).toBe(1);
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
