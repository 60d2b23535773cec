/** Logs: one readable line each on a terminal, JSON lines otherwise, forced either way by env. */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createLogger, logFormat } from "../src/logger.js";

const dir = mkdtempSync(join(tmpdir(), "desktopd-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function written(format: "json" | "pretty"): string {
  const path = join(dir, `${format}.log`);
  const fd = openSync(path, "w");
  const logger = createLogger("info", fd, format);
  logger.info({ link: "qemu:/tmp/vm.sock#1", macs: ["02:00:00:00:00:0a"] }, "guest link added");
  logger.debug({}, "not at info");
  closeSync(fd);
  return readFileSync(path, "utf8");
}

describe("createLogger", () => {
  it("writes readable one-liners in pretty format", () => {
    const text = written("pretty");
    const lines = text.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: guest link added /);
    expect(lines[0]).toContain('{"link":"qemu:/tmp/vm.sock#1","macs":["02:00:00:00:00:0a"]}');
    expect(() => JSON.parse(lines[0]!)).toThrow();
    expect(text).not.toContain("pid");
  });

  it("writes pino JSON lines otherwise", () => {
    const line = JSON.parse(written("json").trimEnd()) as Record<string, unknown>;
    expect(line).toMatchObject({
      level: 30,
      name: "desktopd",
      msg: "guest link added",
      link: "qemu:/tmp/vm.sock#1",
    });
  });

  it("guesses from the terminal, and DESKTOPD_LOG_FORMAT wins", () => {
    const fd = openSync(join(dir, "file"), "w");
    try {
      expect(logFormat(fd, {})).toBe("json");
      expect(logFormat(fd, { DESKTOPD_LOG_FORMAT: "pretty" })).toBe("pretty");
      expect(logFormat(fd, { DESKTOPD_LOG_FORMAT: "json" })).toBe("json");
    } finally {
      closeSync(fd);
    }
  });
});
