/** The host-socket listener's lifecycle on loopback: answers still being resolved at close(). */
import { createSocket } from "node:dgram";
import * as packet from "dns-packet";
import { describe, expect, it } from "vitest";
import { createDnsHandler, createResolver, type Layer, listenDns } from "../src/index.js";

describe("listenDns", () => {
  it("drops an answer that is ready only after close(), without an unhandled error", async () => {
    let release = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let asked = () => {};
    const arrived = new Promise<void>((r) => {
      asked = r;
    });
    const gated: Layer = {
      name: "gated",
      resolve: async () => {
        asked();
        await gate;
        return { rcode: "NOERROR", answers: [], authorities: [], additionals: [], authoritative: true };
      },
    };
    const handler = createDnsHandler({ resolver: createResolver([gated]) });
    const listener = await listenDns(handler, { port: 0, tcp: false });
    const client = createSocket("udp4");
    const query = packet.encode({ type: "query", id: 1, questions: [{ name: "late.test", type: "A" }] });
    client.send(query, listener.port, listener.host);
    await arrived;
    await listener.close();
    release();
    // Let the resolution finish and its reply be attempted.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    client.close();
    expect(handler.counters()).toMatchObject({ inflight: 0, rcodes: { NOERROR: 1 } });
  });
});
