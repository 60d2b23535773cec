import type { FrameTransport } from "@desktopd/core";
import { describe, expect, it, vi } from "vitest";
import { ConfigError } from "../../src/errors.js";
import { createTransportPair } from "../../src/testing/pair.js";
import { type FaultOptions, withFaults } from "../../src/transport/fault.js";
import { udpRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";

const template = bytes(udpRequest);

/** A copy of a captured UDP frame with `index` stamped into its IP identification field. */
function frame(index: number): Buffer {
  const f = Buffer.from(template);
  f.writeUInt16BE(index, 18);
  return f;
}
const indexOf = (f: Buffer) => f.readUInt16BE(18);

function collect(t: FrameTransport): Buffer[] {
  const got: Buffer[] = [];
  t.start({ onFrame: (f) => got.push(f) });
  return got;
}

const settle = () => new Promise((r) => setImmediate(r));

/** Sends `count` numbered frames through a fault injector in the "out" direction. */
async function runOut(options: FaultOptions, count: number) {
  const [a, b] = createTransportPair({ queueLimit: count * 2 + 10 });
  const faulty = withFaults(a, options);
  collect(faulty);
  const got = collect(b);
  for (let i = 0; i < count; i++) faulty.send(frame(i));
  await faulty.close();
  await settle();
  return { got, faults: faulty.stats.faults };
}

describe("withFaults", () => {
  it("replays the same faults for the same seed", async () => {
    const options: FaultOptions = { seed: 42, drop: 0.1, duplicate: 0.1, reorder: 0.1, corrupt: 0.1 };
    const first = await runOut(options, 2000);
    const second = await runOut(options, 2000);
    expect(second.faults).toEqual(first.faults);
    expect(second.got.map((f) => f.toString("hex"))).toEqual(first.got.map((f) => f.toString("hex")));
    const other = await runOut({ ...options, seed: 43 }, 2000);
    expect(other.got.map((f) => f.toString("hex"))).not.toEqual(first.got.map((f) => f.toString("hex")));
  });

  it("drops about the given fraction", async () => {
    const { got, faults } = await runOut({ seed: 1, drop: 0.1 }, 10_000);
    expect(faults.dropped).toBeGreaterThan(850);
    expect(faults.dropped).toBeLessThan(1150);
    expect(got).toHaveLength(10_000 - faults.dropped);
    // What survives is in order and unchanged.
    const indices = got.map(indexOf);
    expect(indices).toEqual([...indices].sort((x, y) => x - y));
  });

  it("corrupts exactly one byte of about the given fraction", async () => {
    const { got, faults } = await runOut({ seed: 2, corrupt: 0.05 }, 10_000);
    expect(faults.corrupted).toBeGreaterThan(400);
    expect(faults.corrupted).toBeLessThan(600);
    expect(got).toHaveLength(10_000);
    let changed = 0;
    for (let i = 0; i < got.length; i++) {
      const expected = frame(i);
      let diff = 0;
      for (let j = 0; j < expected.length; j++) if (got[i]![j] !== expected[j]) diff++;
      expect(diff).toBeLessThanOrEqual(1);
      changed += diff;
    }
    expect(changed).toBe(faults.corrupted);
  });

  it("delivers duplicated frames twice, as separate buffers", async () => {
    const { got, faults } = await runOut({ seed: 3, duplicate: 0.2 }, 10_000);
    expect(faults.duplicated).toBeGreaterThan(1800);
    expect(faults.duplicated).toBeLessThan(2200);
    expect(got).toHaveLength(10_000 + faults.duplicated);
    let pairs = 0;
    for (let i = 1; i < got.length; i++) {
      if (indexOf(got[i]!) === indexOf(got[i - 1]!)) {
        pairs++;
        expect(got[i]!.equals(got[i - 1]!)).toBe(true);
        expect(got[i]!.buffer === got[i - 1]!.buffer && got[i]!.byteOffset === got[i - 1]!.byteOffset).toBe(
          false,
        );
      }
    }
    expect(pairs).toBe(faults.duplicated);
  });

  it("reorders without losing or inventing a frame", async () => {
    const { got, faults } = await runOut({ seed: 4, reorder: 0.2 }, 10_000);
    const indices = got.map(indexOf);
    expect([...indices].sort((x, y) => x - y)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    let inversions = 0;
    for (let i = 1; i < indices.length; i++) if (indices[i]! < indices[i - 1]!) inversions++;
    expect(inversions).toBe(faults.reordered);
    // A frame is held with p = 0.2 unless one is already held: about p / (1 + p) of all frames.
    expect(faults.reordered).toBeGreaterThan(1450);
    expect(faults.reordered).toBeLessThan(1900);
  });

  it("releases a held frame on its own when no successor comes", async () => {
    const [a, b] = createTransportPair();
    const faulty = withFaults(a, { seed: 5, reorder: 1, reorderTimeoutMs: 5 });
    collect(faulty);
    const got = collect(b);
    faulty.send(frame(7));
    await settle();
    expect(got).toHaveLength(0);
    await vi.waitFor(() => expect(got.map(indexOf)).toEqual([7]), { timeout: 5000 });
    expect(faulty.stats.faults.reordered).toBe(0);
    await faulty.close();
  });

  it("releases a held frame before closing", async () => {
    const [a, b] = createTransportPair();
    const faulty = withFaults(a, { seed: 6, reorder: 1, reorderTimeoutMs: 60_000 });
    collect(faulty);
    const got = collect(b);
    faulty.send(frame(9));
    await faulty.close();
    await settle();
    expect(got.map(indexOf)).toEqual([9]);
  });

  it("drops everything with drop = 1, in both directions", async () => {
    const [a, b] = createTransportPair();
    const faulty = withFaults(a, { seed: 7, drop: 1 });
    const atFaulty = collect(faulty);
    const atPeer = collect(b);
    for (let i = 0; i < 100; i++) {
      faulty.send(frame(i));
      b.send(frame(i));
    }
    await settle();
    expect(atPeer).toHaveLength(0);
    expect(atFaulty).toHaveLength(0);
    expect(faulty.stats.faults.dropped).toBe(200);
    // The inner link did carry the received frames; the injector dropped them after.
    expect(faulty.stats.framesIn).toBe(100);
    await faulty.close();
  });

  it("touches only the chosen direction", async () => {
    const [a, b] = createTransportPair();
    const faulty = withFaults(a, { seed: 8, drop: 1, direction: "in" });
    const atFaulty = collect(faulty);
    const atPeer = collect(b);
    for (let i = 0; i < 50; i++) {
      faulty.send(frame(i));
      b.send(frame(i));
    }
    await settle();
    expect(atPeer).toHaveLength(50);
    expect(atFaulty).toHaveLength(0);
    expect(faulty.stats.faults.dropped).toBe(50);
    await faulty.close();
  });

  it("rejects probabilities outside [0, 1]", () => {
    const [a] = createTransportPair();
    for (const bad of [-0.1, 1.5, Number.NaN]) {
      let error: unknown;
      try {
        withFaults(a, { seed: 1, drop: bad });
      } catch (e) {
        error = e;
      }
      expect(ConfigError.isInstance(error)).toBe(true);
    }
  });
});
