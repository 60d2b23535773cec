/** Whether a debug line is worth building: asked of the logger where it can say. */
import { describe, expect, it } from "vitest";
import { debugEnabled, type Logger, silentLogger } from "../src/index.js";

function logger(level?: "debug" | "info"): Logger {
  const write = () => {};
  const l: Logger = { debug: write, info: write, warn: write, error: write, child: () => l };
  if (level) l.isLevelEnabled = (wanted) => wanted !== "debug" || level === "debug";
  return l;
}

describe("debugEnabled", () => {
  it("follows the logger's level, and takes a logger that cannot say to write everything", () => {
    expect(debugEnabled(silentLogger)).toBe(false);
    expect(debugEnabled(logger("info"))).toBe(false);
    expect(debugEnabled(logger("debug"))).toBe(true);
    expect(debugEnabled(logger())).toBe(true);
  });
});
