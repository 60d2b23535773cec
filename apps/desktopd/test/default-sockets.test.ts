/**
 * `desktopd run` with no transport named (what `npm start` runs): a qemu, a vfkit and a control
 * socket in the per-user runtime directory, private to the user, and VMM arguments that name them.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { skipBecause } from "@desktopd/stack/testing";
import { describe, expect, it } from "vitest";
import { CLI_PATH, parseReadyLine } from "./support/daemon.js";

const notBuilt = skipBecause(existsSync(CLI_PATH) ? undefined : `${CLI_PATH} is missing: run npm run build`);

describe.skipIf(notBuilt)("desktopd run with no transport named", () => {
  it("listens on private sockets in the runtime directory and prints how to attach to them", async () => {
    const xdg = await mkdtemp(join(tmpdir(), "dtd-xdg-"));
    const child = spawn(process.execPath, [CLI_PATH, "run", "--log-level", "warn"], {
      env: { ...process.env, XDG_RUNTIME_DIR: xdg },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    try {
      for (let i = 0; i < 200 && !/vfkit: .*\n.*qemu: .*dgram.*\n/.test(stdout); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const dir = join(xdg, "desktopd");
      const info = parseReadyLine(stdout.split("\n").find((l) => l.startsWith("desktopd ready")) ?? "");
      expect(info, `${stdout}\n${stderr}`).toMatchObject({
        qemu: join(dir, "qemu.sock"),
        vfkit: join(dir, "vfkit.sock"),
        control: join(dir, "control.sock"),
      });
      expect(statSync(dir).mode & 0o777).toBe(0o700);
      for (const name of ["qemu.sock", "vfkit.sock", "control.sock"]) {
        const st = statSync(join(dir, name));
        expect([name, st.isSocket(), st.mode & 0o777]).toEqual([name, true, 0o600]);
      }
      expect(stdout).toContain(`addr.path=${join(dir, "qemu.sock")} -device virtio-net-pci,netdev=net0,mac=`);
      expect(stdout).toContain(`unixSocketPath=${join(dir, "vfkit.sock")},mac=`);
      expect(stdout).toMatch(new RegExp(`local\\.path=${dir}/vm-[0-9a-f]{6}\\.sock,remote\\.type=unix`));
      const macs = stdout.match(/mac=([0-9a-f:]{17})/g) ?? [];
      expect(macs).toHaveLength(3);
      expect(new Set(macs).size).toBe(3);
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      expect(code, stderr).toBe(0);
      // Its own sockets are removed on the way out.
      for (const name of ["qemu.sock", "vfkit.sock", "control.sock"])
        expect(existsSync(join(dir, name))).toBe(false);
    } finally {
      child.kill("SIGKILL");
      await rm(xdg, { recursive: true, force: true });
    }
  });
});
