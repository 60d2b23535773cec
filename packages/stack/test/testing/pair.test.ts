import { describe, expect, it } from "vitest";
import { TransportError } from "../../src/errors.js";
import { createTransportPair } from "../../src/testing/pair.js";

const settle = () => new Promise((r) => setImmediate(r));
const numbered = (i: number) => Buffer.from([i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00]);

describe("createTransportPair", () => {
  it("delivers asynchronously, in order, in both directions", async () => {
    const [a, b] = createTransportPair();
    const atA: number[] = [];
    const atB: number[] = [];
    a.start({ onFrame: (f) => atA.push(f[0]!) });
    b.start({ onFrame: (f) => atB.push(f[0]!) });
    for (let i = 0; i < 5; i++) a.send(numbered(i));
    b.send(numbered(9));
    expect(atB).toEqual([]);
    await settle();
    expect(atB).toEqual([0, 1, 2, 3, 4]);
    expect(atA).toEqual([9]);
    expect(a.stats).toMatchObject({ framesOut: 5, framesIn: 1, bytesOut: 70, bytesIn: 14 });
  });

  it("queues frames until the other side starts, up to the limit", async () => {
    const [a, b] = createTransportPair({ queueLimit: 3 });
    for (let i = 0; i < 5; i++) a.send(numbered(i));
    expect(a.stats.drops["queue-full"]).toBe(2);
    const got: number[] = [];
    b.start({ onFrame: (f) => got.push(f[0]!) });
    await settle();
    expect(got).toEqual([0, 1, 2]);
    expect(() => b.start({ onFrame: () => {} })).toThrow(TransportError);
  });

  it("drops oversize frames", () => {
    const [a] = createTransportPair({ maxFrameLength: 100 });
    a.send(Buffer.alloc(101));
    expect(a.stats.drops.oversize).toBe(1);
    expect(a.stats.framesOut).toBe(0);
  });

  it("on close delivers what was sent, then tells the other side", async () => {
    const [a, b] = createTransportPair();
    const events: string[] = [];
    a.start({ onFrame: () => {}, onClose: (e) => events.push(`a closed ${e ? "error" : "ok"}`) });
    b.start({
      onFrame: (f) => events.push(`b got ${f[0]}`),
      onClose: (e) => events.push(`b closed ${TransportError.isInstance(e) ? "TransportError" : e}`),
    });
    a.send(numbered(1));
    await a.close();
    a.send(numbered(2));
    b.send(numbered(3));
    await settle();
    expect(events).toEqual(["a closed ok", "b got 1", "b closed TransportError"]);
    expect(a.stats.drops["link-down"]).toBe(1);
    expect(b.stats.drops["link-down"]).toBe(1);
    await b.close();
    expect(events).toHaveLength(3);
  });
});
