/**
 * Queries being resolved are capped per client address and in total: beyond either the query is
 * answered REFUSED at once, under its own id, counted by reason, and the others are unaffected.
 */
import * as packet from "dns-packet";
import { describe, expect, it } from "vitest";
import { createDnsHandler, createResolver, type Layer } from "../src/index.js";
import { ClientLimiter, clientAddress } from "../src/limiter.js";

function query(id: number, name: string): Buffer {
  return packet.encode({
    type: "query",
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type: "A" }],
  });
}
const rcodeOf = (b: Buffer | undefined) => b!.readUInt16BE(2) & 0xf;
const idOf = (b: Buffer | undefined) => b!.readUInt16BE(0);

/** A layer that holds every query until released, as a silent upstream would until its timeout. */
function gated(): { layer: Layer; release: () => void } {
  let release = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  return {
    release: () => release(),
    layer: {
      name: "gated",
      resolve: async () => {
        await gate;
        return { rcode: "NOERROR", answers: [], authorities: [], additionals: [], authoritative: false };
      },
    },
  };
}

describe("queries in flight", () => {
  it("answers REFUSED at once beyond the per-client cap, by address whatever the port", async () => {
    const { layer, release } = gated();
    const h = createDnsHandler({
      resolver: createResolver([layer]),
      maxInflightPerClient: 2,
      maxInflight: 10,
    });
    const held = [
      h.handle(query(1, "a.test"), "192.168.65.3:4001", "udp"),
      h.handle(query(2, "b.test"), "192.168.65.3:4002", "tcp"),
    ];
    const third = await h.handle(query(3, "c.test"), "192.168.65.3:4003", "udp");
    expect([idOf(third), rcodeOf(third)]).toEqual([3, 5]);
    // Another guest is not held back by the first one's queries.
    const other = h.handle(query(4, "d.test"), "192.168.65.4:4001", "udp");
    expect(h.counters()).toMatchObject({
      inflight: 3,
      limited: { "client-inflight": 1 },
      rcodes: { REFUSED: 1 },
    });
    release();
    expect((await Promise.all([...held, other])).map(rcodeOf)).toEqual([0, 0, 0]);
    expect(h.counters().inflight).toBe(0);
    // The slots came back.
    expect(rcodeOf(await h.handle(query(5, "e.test"), "192.168.65.3:4001", "udp"))).toBe(0);
  });

  it("answers REFUSED beyond the total cap, and recovers", async () => {
    const { layer, release } = gated();
    const h = createDnsHandler({
      resolver: createResolver([layer]),
      maxInflightPerClient: 5,
      maxInflight: 2,
    });
    const held = [
      h.handle(query(1, "a.test"), "10.0.0.1:1", "udp"),
      h.handle(query(2, "b.test"), "10.0.0.2:1", "udp"),
    ];
    const third = await h.handle(query(3, "c.test"), "10.0.0.3:1", "udp");
    expect(rcodeOf(third)).toBe(5);
    expect(h.counters().limited).toEqual({ inflight: 1 });
    release();
    expect((await Promise.all(held)).map(rcodeOf)).toEqual([0, 0]);
    expect(rcodeOf(await h.handle(query(4, "d.test"), "10.0.0.3:1", "udp"))).toBe(0);
  });

  it("keeps the REFUSED answer a well-formed response to the question, EDNS included", async () => {
    const { layer } = gated();
    const h = createDnsHandler({
      resolver: createResolver([layer]),
      maxInflightPerClient: 1,
    });
    void h.handle(query(1, "held.test"), "10.0.0.1:1", "udp");
    const edns = packet.encode({
      type: "query",
      id: 7,
      questions: [{ name: "x.test", type: "A" }],
      additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232 } as packet.Answer],
    });
    const r = packet.decode((await h.handle(edns, "10.0.0.1:2", "udp"))!);
    expect([r.id, r.flags! & 0xf, r.questions?.[0]?.name]).toEqual([7, 5, "x.test"]);
    expect(r.additionals?.some((a) => a.type === "OPT")).toBe(true);
  });
});

describe("ClientLimiter", () => {
  it("counts per client and in total, and forgets a client with nothing held", () => {
    const l = new ClientLimiter(2, 3);
    expect([l.acquire("a"), l.acquire("a"), l.acquire("a")]).toEqual([undefined, undefined, "client"]);
    expect([l.acquire("b"), l.acquire("c")]).toEqual([undefined, "total"]);
    l.release("a");
    l.release("a");
    expect([l.inUse, l.clients]).toEqual([1, 1]);
    // A release without a slot held changes nothing.
    l.release("zzz");
    expect(l.inUse).toBe(1);
  });

  it("reads the address out of a client label", () => {
    expect(clientAddress("192.168.65.3:40000")).toBe("192.168.65.3");
    expect(clientAddress("fd00::3:53")).toBe("fd00::3");
    expect(clientAddress("192.168.65.3")).toBe("192.168.65.3");
    expect(clientAddress("fd00::3")).toBe("fd00::3");
    expect(clientAddress("t")).toBe("t");
  });
});
