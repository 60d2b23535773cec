import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { attachHelp } from "../src/attach-help.js";
import { InvalidOptionError } from "../src/errors.js";
import { ensurePrivateDir, runtimeDir } from "../src/runtime-dir.js";

describe("attach help", () => {
  it("gives qemu's stream, socket and dgram netdevs and vfkit's device for each socket", () => {
    const lines = attachHelp({
      qemuListen: [{ path: "/run/d/qemu.sock" }, { host: "127.0.0.1", port: 4444 }],
      qemuConnect: [{ path: "/run/d/vm.sock" }],
      vfkit: ["/run/d/vfkit.sock"],
    });
    expect(lines).toEqual([
      "qemu:  -netdev stream,id=net0,server=off,addr.type=unix,addr.path=/run/d/qemu.sock -device virtio-net-pci,netdev=net0",
      "qemu:  -netdev socket,id=net0,connect=127.0.0.1:4444 -device virtio-net-pci,netdev=net0",
      "qemu:  -netdev stream,id=net0,server=on,addr.type=unix,addr.path=/run/d/vm.sock -device virtio-net-pci,netdev=net0",
      "vfkit: --device virtio-net,unixSocketPath=/run/d/vfkit.sock,mac=5a:94:ef:e4:0c:ee",
      "qemu:  -netdev dgram,id=net0,local.type=unix,local.path=/tmp/VM-NAME-net0.sock,remote.type=unix,remote.path=/run/d/vfkit.sock -device virtio-net-pci,netdev=net0",
    ]);
  });
});

describe("runtime directory", () => {
  it("prefers $XDG_RUNTIME_DIR, then /run/user/UID, then the temp directory", () => {
    const xdg = mkdtempSync(join(tmpdir(), "xdg-"));
    try {
      expect(runtimeDir({ XDG_RUNTIME_DIR: xdg })).toBe(join(xdg, "desktopd"));
      const fallback = runtimeDir({ XDG_RUNTIME_DIR: join(xdg, "missing") });
      expect([
        join(`/run/user/${userInfo().uid}`, "desktopd"),
        join(tmpdir(), `desktopd-${userInfo().uid}`),
      ]).toContain(fallback);
    } finally {
      rmSync(xdg, { recursive: true, force: true });
    }
  });

  it("creates it private, and refuses one others can enter", () => {
    const base = mkdtempSync(join(tmpdir(), "rt-"));
    try {
      const dir = ensurePrivateDir(join(base, "desktopd"));
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      const open = join(base, "open");
      ensurePrivateDir(open);
      chmodSync(open, 0o755);
      expect(() => ensurePrivateDir(open)).toThrow(InvalidOptionError);
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
