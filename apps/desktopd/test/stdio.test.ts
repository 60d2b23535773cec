/**
 * `desktopd run --stdio` as a VMM wrapper spawns it: frames with qemu's length prefix on
 * stdin/stdout, everything for people on stderr, and a clean exit when stdin ends.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { skipBecause } from "@desktopd/stack/testing";
import { describe, expect, it } from "vitest";
import { CLI_PATH } from "./support/daemon.js";

const GUEST_MAC = Buffer.from("5254000a0b0c", "hex");

/** An ARP request "who has 192.168.65.1, tell 192.168.65.9" from GUEST_MAC. */
function arpWhoHasGateway(): Buffer {
  const f = Buffer.alloc(42);
  Buffer.from("ffffffffffff", "hex").copy(f, 0);
  GUEST_MAC.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16); // IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(1, 20); // request
  GUEST_MAC.copy(f, 22);
  Buffer.from([192, 168, 65, 9]).copy(f, 28);
  Buffer.from([192, 168, 65, 1]).copy(f, 38);
  return f;
}

function framed(frame: Buffer): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(frame.length);
  return Buffer.concat([prefix, frame]);
}

const notBuilt = skipBecause(existsSync(CLI_PATH) ? undefined : `${CLI_PATH} is missing: run npm run build`);

describe.skipIf(notBuilt)("desktopd run --stdio", () => {
  it("answers ARP over stdin/stdout, keeps stdout for frames, and exits 0 when stdin ends", async () => {
    const child = spawn(process.execPath, [CLI_PATH, "run", "--stdio", "--log-level", "warn"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    // The ready line comes on stderr, the reply on stdout: two pipes, in no set order.
    const ready = new Promise<void>((resolve) => {
      child.stderr.setEncoding("utf8").on("data", (s: string) => {
        stderr += s;
        if (stderr.includes("desktopd ready")) resolve();
      });
    });
    const chunks: Buffer[] = [];
    const gotReply = new Promise<Buffer>((resolve) => {
      child.stdout.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        const all = Buffer.concat(chunks);
        if (all.length >= 4 && all.length >= 4 + all.readUInt32BE(0))
          resolve(all.subarray(4, 4 + all.readUInt32BE(0)));
      });
    });
    // A garbage-length frame first: counted and skipped, the link stays up.
    child.stdin.write(framed(Buffer.alloc(5)));
    child.stdin.write(framed(arpWhoHasGateway()));
    const reply = await gotReply;
    expect(reply.subarray(0, 6)).toEqual(GUEST_MAC);
    expect(reply.readUInt16BE(12)).toBe(0x0806);
    expect(reply.readUInt16BE(20)).toBe(2); // ARP reply
    expect([...reply.subarray(28, 32)]).toEqual([192, 168, 65, 1]);
    await Promise.race([ready, once(child, "exit")]);
    expect(stderr).toContain("desktopd ready");
    expect(stderr).toContain("stdio=yes");
    child.stdin.end();
    const [code] = await once(child, "exit");
    expect(code, stderr).toBe(0);
  });
});

describe.skipIf(notBuilt)("desktopd run --stdio beside another transport", () => {
  it("loses only the stdio link to garbage on stdin; the qemu socket's guests carry on", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dtd-stdio-"));
    const sock = join(dir, "qemu.sock");
    const child = spawn(process.execPath, [CLI_PATH, "run", "--stdio", "--qemu-socket", sock], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ready:\n${stderr}`)), 20_000);
        child.stderr.on("data", () => {
          if (stderr.includes("desktopd ready")) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      // Text where a length prefix belongs: "GET " reads as a 1.1 GB frame.
      child.stdin.write("GET / HTTP/1.1\r\n\r\n");
      for (let i = 0; i < 100 && !stderr.includes("stdio guest link lost"); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(stderr).toContain("stdio guest link lost; serving the others");
      expect(child.exitCode).toBe(null);

      const vm = net.connect(sock);
      await once(vm, "connect");
      const chunks: Buffer[] = [];
      const reply = new Promise<Buffer>((resolve) => {
        vm.on("data", (chunk: Buffer) => {
          chunks.push(chunk);
          const all = Buffer.concat(chunks);
          if (all.length >= 4 && all.length >= 4 + all.readUInt32BE(0))
            resolve(all.subarray(4, 4 + all.readUInt32BE(0)));
        });
      });
      vm.write(framed(arpWhoHasGateway()));
      expect((await reply).readUInt16BE(20)).toBe(2); // ARP reply over the qemu socket
      vm.destroy();
      child.kill("SIGTERM");
      const [code] = await once(child, "exit");
      expect(code, stderr).toBe(0);
    } finally {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });
});
