/**
 * The neighbour table's source guard and bounds: an address belongs to the MAC that used it first
 * until that MAC is silent, the table holds `limit` entries, and with `perMacLimit` one MAC that
 * hops addresses only pushes out its own.
 */
import { describe, expect, it } from "vitest";
import { NeighbourTable } from "../../src/iface/neighbours.js";
import { parseMac } from "../../src/wire/address.js";

const A = parseMac("02:00:00:00:00:0a")!;
const B = parseMac("02:00:00:00:00:0b")!;

describe("NeighbourTable", () => {
  it("keeps an address for the MAC that used it until it has been silent for holdMs", () => {
    const t = new NeighbourTable<string>({ holdMs: 1000 });
    expect(t.admit("fd00::a", A, 0)).toBe(true);
    expect(t.admit("fd00::a", B, 500)).toBe(false);
    expect(t.admit("fd00::a", A, 900)).toBe(true);
    expect(t.admit("fd00::a", B, 1800)).toBe(false);
    expect(t.admit("fd00::a", B, 1901)).toBe(true);
    expect(t.lookup("fd00::a")?.equals(B)).toBe(true);
  });

  it("with perMacLimit, a MAC hopping addresses evicts its own oldest, never another's", () => {
    const t = new NeighbourTable<string>({ limit: 100, perMacLimit: 3 });
    t.admit("fd00::b", B, 0);
    for (let i = 0; i < 50; i++) t.admit(`fd00::a:${i}`, A, i);
    expect(t.size).toBe(4);
    expect(t.evictedOverMacLimit).toBe(47);
    expect(t.lookup("fd00::b")?.equals(B)).toBe(true);
    expect(t.list().map((e) => e.address)).toEqual(["fd00::b", "fd00::a:47", "fd00::a:48", "fd00::a:49"]);
    // The guard still holds for B's address.
    expect(t.admit("fd00::b", A, 60)).toBe(false);
  });

  it("without perMacLimit, the table's own bound evicts the oldest entry", () => {
    const t = new NeighbourTable<number>({ limit: 3 });
    for (let i = 1; i <= 5; i++) t.admit(i, A, i);
    expect(t.list().map((e) => e.address)).toEqual([3, 4, 5]);
  });
});
