/** Where the default sockets go, and the checks that keep another user out of it. */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ensurePrivateDir, runtimeDir } from "../src/runtime-dir.js";

const dir = mkdtempSync(join(tmpdir(), "desktopd-rtdir-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const uid = userInfo().uid;

describe("runtimeDir", () => {
  it("uses XDG_RUNTIME_DIR when it is ours", () => {
    expect(runtimeDir({ XDG_RUNTIME_DIR: dir })).toBe(join(dir, "desktopd"));
  });

  it.skipIf(uid !== 0)("passes over an XDG_RUNTIME_DIR of another user (kept by sudo)", () => {
    const theirs = join(dir, "theirs");
    mkdirSync(theirs);
    chownSync(theirs, 1000, 1000);
    expect(runtimeDir({ XDG_RUNTIME_DIR: theirs }).startsWith(theirs)).toBe(false);
  });
});

describe("ensurePrivateDir", () => {
  it("creates a 0700 directory", () => {
    const at = join(dir, "fresh");
    expect(ensurePrivateDir(at)).toBe(at);
  });

  it("refuses a directory others can enter", () => {
    const at = join(dir, "open");
    mkdirSync(at);
    chmodSync(at, 0o755);
    expect(() => ensurePrivateDir(at)).toThrow(/mode 0700/);
  });
});
