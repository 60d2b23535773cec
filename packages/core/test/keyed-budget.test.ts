import { describe, expect, it } from "vitest";
import { KeyedBudget } from "../src/keyed-budget.js";

describe("KeyedBudget", () => {
  it("grants within the key's share and the total, partially down to a minimum, nothing below it", () => {
    const b = new KeyedBudget<string>(100, 150);
    expect(b.take("a", 80)).toBe(80);
    expect(b.take("a", 50, 10)).toBe(20);
    expect(b.take("a", 1)).toBe(0);
    expect(b.take("b", 100, 60)).toBe(0);
    expect(b.take("b", 100, 50)).toBe(50);
    expect([b.used, b.keys, b.available("c")]).toEqual([150, 2, 0]);
  });

  it("gives back at most what a key holds, and forgets a key that holds nothing", () => {
    const b = new KeyedBudget<string>(3);
    b.take("a", 2);
    b.give("a", 5);
    b.give("zzz");
    expect([b.used, b.keys, b.usedBy("a")]).toEqual([0, 0, 0]);
  });
});
