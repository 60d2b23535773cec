import { cryptoRandom } from "@desktopd/core";
import { describe, expect, it } from "vitest";

describe("cryptoRandom", () => {
  it("gives fresh 32-bit words across its batch refills", () => {
    const draws = Array.from({ length: 1000 }, () => cryptoRandom.u32());
    for (const v of draws) expect(Number.isInteger(v) && v >= 0 && v <= 0xffffffff).toBe(true);
    // Four refills' worth: a pool that were not refilled would repeat itself.
    expect(new Set(draws).size).toBeGreaterThan(990);
  });
});
