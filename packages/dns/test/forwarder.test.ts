/**
 * The forwarder against real loopback sockets that never answer (a dead upstream): the time
 * bound, the in-flight limit, and coalescing of identical questions. Only 127.0.0.1 is used.
 */
import { createSocket, type Socket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Forwarder, type Upstream, UpstreamError } from "../src/index.js";

describe("Forwarder with a silent upstream", () => {
  let silent: Socket;
  let received = 0;
  let server: Upstream;
  beforeAll(async () => {
    silent = createSocket("udp4");
    silent.on("message", () => {
      received++;
    });
    await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve));
    server = { host: "127.0.0.1", port: silent.address().port };
  });
  afterAll(() => silent?.close());

  it("shares one upstream query between identical questions and fails them at the bound", async () => {
    const f = new Forwarder({ timeoutMs: 100 });
    const q = { name: "same.test", type: "A" as const };
    const both = [f.resolve("s", [server], q), f.resolve("s", [server], { ...q, name: "SAME.test." })];
    for (const p of both) await expect(p).rejects.toMatchObject({ reason: "timeout" });
    expect(received).toBe(1);
  });

  it("refuses new upstream queries beyond maxInflight instead of queueing them", async () => {
    const f = new Forwarder({ timeoutMs: 100, maxInflight: 2 });
    const a = f.resolve("s", [server], { name: "a.test", type: "A" });
    const b = f.resolve("s", [server], { name: "b.test", type: "A" });
    const c = f.resolve("s", [server], { name: "c.test", type: "A" });
    await expect(c).rejects.toSatisfy((e) => UpstreamError.isInstance(e) && e.reason === "busy");
    await expect(a).rejects.toMatchObject({ reason: "timeout" });
    await expect(b).rejects.toMatchObject({ reason: "timeout" });
    // Once they are settled the slots are free again.
    await expect(f.resolve("s", [server], { name: "d.test", type: "A" })).rejects.toMatchObject({
      reason: "timeout",
    });
  });

  it("says so when there is no nameserver at all", async () => {
    await expect(new Forwarder().resolve("s", [], { name: "x.test", type: "A" })).rejects.toMatchObject({
      reason: "no-servers",
    });
  });
});
