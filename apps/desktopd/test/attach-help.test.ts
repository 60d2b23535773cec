import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { attachHelp, randomMac } from "../src/attach-help.js";
import { InvalidOptionError } from "../src/errors.js";
import { ensurePrivateDir, runtimeDir } from "../src/runtime-dir.js";

describe("attach help", () => {
  it("gives qemu's stream, socket and dgram netdevs and vfkit's device for each socket", () => {
    let n = 0;
    // Counting bytes: each MAC and path differs from the others.
    const counting = (size: number) => Buffer.from(Array.from({ length: size }, () => n++));
    const lines = attachHelp(
      {
        qemuListen: [{ path: "/run/d/qemu.sock" }, { host: "127.0.0.1", port: 4444 }],
        qemuConnect: [{ path: "/run/d/vm.sock" }],
        vfkit: ["/run/d/vfkit.sock"],
      },
      counting,
    );
    expect(lines).toEqual([
      "qemu:  -netdev stream,id=net0,server=off,addr.type=unix,addr.path=/run/d/qemu.sock -device virtio-net-pci,netdev=net0,mac=02:01:02:03:04:05",
      "qemu:  -netdev socket,id=net0,connect=127.0.0.1:4444 -device virtio-net-pci,netdev=net0,mac=06:07:08:09:0a:0b",
      "qemu:  -netdev stream,id=net0,server=on,addr.type=unix,addr.path=/run/d/vm.sock -device virtio-net-pci,netdev=net0,mac=0e:0d:0e:0f:10:11",
      "vfkit: --device virtio-net,unixSocketPath=/run/d/vfkit.sock,mac=12:13:14:15:16:17",
      "qemu:  -netdev dgram,id=net0,local.type=unix,local.path=/run/d/vm-18191a.sock,remote.type=unix,remote.path=/run/d/vfkit.sock -device virtio-net-pci,netdev=net0,mac=1a:1c:1d:1e:1f:20",
    ]);
  });

  it("makes locally administered unicast MACs", () => {
    for (let i = 0; i < 50; i++) {
      const first = Number.parseInt(randomMac().slice(0, 2), 16);
      expect(first & 0x03).toBe(0x02);
    }
    expect(randomMac(() => Buffer.alloc(6, 0xff))).toBe("fe:ff:ff:ff:ff:ff");
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
