/**
 * The pool host reads are copied into: a slab is only written again once every view cut from it
 * was released, and the pool never grows past its bound whatever a guest leaves unacknowledged.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../src/clock.js";
import { SlabPool } from "../src/slab-pool.js";

const bytes = (n: number, seed: number) =>
  Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

describe("SlabPool", () => {
  it("copies into shared slab memory, not buffers of their own", () => {
    const pool = new SlabPool({ slabSize: 1000 });
    const a = pool.copy(bytes(300, 1));
    const b = pool.copy(bytes(300, 2));
    expect(a.equals(bytes(300, 1))).toBe(true);
    expect(b.equals(bytes(300, 2))).toBe(true);
    expect(a.buffer).toBe(b.buffer);
    expect(b.byteOffset).toBe(a.byteOffset + 300);
    expect(pool.stats.slabsAllocated).toBe(1);
  });

  it("reuses a slab only once all its views are released", () => {
    const pool = new SlabPool({ slabSize: 1000 });
    const first = [pool.copy(bytes(400, 1)), pool.copy(bytes(400, 2))];
    const pinned = pool.copy(bytes(400, 3)); // does not fit: a second slab
    expect(pinned.buffer).not.toBe(first[0]!.buffer);
    pool.release(first[0]!);
    // One view of the first slab is still read: more data goes to new memory.
    const next = [pool.copy(bytes(400, 4)), pool.copy(bytes(400, 5))];
    expect(next.every((v) => v.buffer !== first[0]!.buffer)).toBe(true);
    expect(first[1]!.equals(bytes(400, 2))).toBe(true);
    pool.release(first[1]!);
    expect(pool.size.free).toBe(1);
    const reused = pool.copy(bytes(900, 6));
    expect(reused.buffer).toBe(first[0]!.buffer);
    expect(pool.stats.slabsReused).toBe(1);
    expect(pinned.equals(bytes(400, 3))).toBe(true);
  });

  it("starts the current slab over once everything in it is released", () => {
    const pool = new SlabPool({ slabSize: 1000 });
    const a = pool.copy(bytes(600, 1));
    pool.release(a);
    const b = pool.copy(bytes(600, 2));
    expect(b.buffer).toBe(a.buffer);
    expect(b.byteOffset).toBe(a.byteOffset);
    expect(pool.stats.slabsAllocated).toBe(1);
  });

  it("stays within maxSlabs: past it, copies get memory of their own", () => {
    const pool = new SlabPool({ slabSize: 100, maxSlabs: 2, maxFree: 2 });
    // A guest that never acknowledges: one byte pins each slab.
    const pins = [pool.copy(bytes(1, 1)), pool.copy(bytes(100, 2)), pool.copy(bytes(100, 3))];
    expect(pool.size.slabs).toBe(2);
    expect(pool.stats.unpooled).toBe(1);
    expect(pins[2]!.buffer).not.toBe(pins[0]!.buffer);
    expect(pins[2]!.buffer).not.toBe(pins[1]!.buffer);
    expect(pins.map((p, i) => p.equals(bytes(p.length, i + 1)))).toEqual([true, true, true]);
    // Larger than a slab: never pooled.
    expect(pool.copy(bytes(101, 4)).equals(bytes(101, 4))).toBe(true);
    expect(pool.stats.unpooled).toBe(2);
  });

  it("lets its free slabs go once copies have stopped for idleMs", () => {
    const clock = new ManualClock(0);
    const pool = new SlabPool({ slabSize: 100, clock, idleMs: 10_000 });
    const a = pool.copy(bytes(80, 1));
    pool.copy(bytes(80, 2)); // a second slab: the first is retired
    pool.release(a);
    expect(pool.size.free).toBe(1);
    clock.advance(6000);
    pool.copy(bytes(10, 3)); // still in use: the idle time starts over
    clock.advance(9999);
    expect(pool.size.free).toBe(1);
    clock.advance(1);
    expect(pool.size.free).toBe(0);
    // Released afterwards: freed again, and let go again after the next quiet period.
    const b = pool.copy(bytes(95, 4));
    pool.copy(bytes(95, 5));
    pool.release(b);
    expect(pool.size.free).toBe(1);
    clock.advance(10_000);
    expect(pool.size.free).toBe(0);
    pool.close();
  });

  it("ignores buffers it did not make", () => {
    const pool = new SlabPool({ slabSize: 100 });
    const live = pool.copy(bytes(50, 1));
    pool.release(Buffer.alloc(50));
    pool.release(Buffer.allocUnsafeSlow(50));
    expect(pool.copy(bytes(50, 2)).byteOffset).toBe(live.byteOffset + 50);
    expect(live.equals(bytes(50, 1))).toBe(true);
  });

  it("never overwrites a view that was not released (property)", () => {
    const op = fc.oneof(
      fc.record({ copy: fc.integer({ min: 1, max: 300 }) }),
      fc.record({ release: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), fc.integer({ min: 1, max: 6 }), (ops, maxFree) => {
        const pool = new SlabPool({ slabSize: 256, maxSlabs: 8, maxFree });
        const live: { view: Buffer; want: Buffer }[] = [];
        let seed = 0;
        for (const o of ops) {
          if ("copy" in o) {
            const want = bytes(o.copy, seed++);
            live.push({ view: pool.copy(want), want });
          } else if (live.length > 0) {
            const [gone] = live.splice(o.release % live.length, 1);
            pool.release(gone!.view);
          }
          for (const l of live) if (!l.view.equals(l.want)) return false;
        }
        return pool.size.slabs <= 8;
      }),
      { numRuns: 300 },
    );
  });
});
