import { closeSync, openSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { processStats } from "../src/process-stats.js";

describe("processStats", () => {
  it("reports memory, open fds and active handles of this process", () => {
    const s = processStats();
    expect(s.pid).toBe(process.pid);
    expect(s.rss).toBeGreaterThan(s.heapUsed);
    expect(s.heapTotal).toBeGreaterThanOrEqual(s.heapUsed);
    expect(s.activeResources).toBe(Object.values(s.activeResourcesByType).reduce((a, b) => a + b, 0));
    if (process.platform !== "linux") return;
    // Counted exactly: one more descriptor is one more.
    const fd = openSync("/dev/null", "r");
    try {
      expect(processStats().fds).toBe(s.fds! + 1);
    } finally {
      closeSync(fd);
    }
  });

  it("counts a timer among the active handles", () => {
    const before = processStats().activeResourcesByType.Timeout ?? 0;
    const timer = setTimeout(() => {}, 60_000);
    try {
      expect(processStats().activeResourcesByType.Timeout).toBe(before + 1);
    } finally {
      clearTimeout(timer);
    }
  });
});
