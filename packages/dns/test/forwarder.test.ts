/**
 * The forwarder against real loopback sockets that never answer (a dead upstream): the time
 * bound, the in-flight limit, and coalescing of identical questions. Only 127.0.0.1 is used.
 */
import { createSocket, type Socket } from "node:dgram";
import * as packet from "dns-packet";
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

describe("Forwarder against spoofed answers", () => {
  it("takes only the response with its id, question name, type and class", async () => {
    const upstream = createSocket("udp4");
    upstream.on("message", (msg, from) => {
      const q = packet.decode(msg);
      const question = q.questions![0]!;
      const reply = (id: number, name: string, klass: string, data: string) =>
        packet.encode({
          type: "response",
          id,
          flags: packet.RECURSION_AVAILABLE,
          questions: [{ ...question, name, class: klass as "IN" }],
          answers: [{ name, type: "A", class: klass as "IN", ttl: 60, data }],
        });
      // Forgeries first, as an off-path attacker racing the real answer would send them.
      for (const m of [
        reply((q.id! + 1) & 0xffff, question.name, "IN", "6.6.6.1"),
        reply(q.id!, "other.test", "IN", "6.6.6.2"),
        reply(q.id!, question.name, "CH", "6.6.6.3"),
        reply(q.id!, question.name.toUpperCase(), "IN", "1.2.3.4"),
      ]) {
        upstream.send(m, from.port, from.address);
      }
    });
    await new Promise<void>((resolve) => upstream.bind(0, "127.0.0.1", resolve));
    const f = new Forwarder({ timeoutMs: 2000 });
    const r = await f.resolve("s", [{ host: "127.0.0.1", port: upstream.address().port }], {
      name: "real.test",
      type: "A",
      class: "IN",
    });
    upstream.close();
    expect(r.answers.map((a) => (a as { data: string }).data)).toEqual(["1.2.3.4"]);
  });
});
