/**
 * The stdio link: qemu's stream framing on a pair of pipes. A child process runs the transport
 * on its own stdin/stdout (as `desktopd run --stdio` behind ssh or a VMM wrapper would), and this
 * process runs it on a child's pipes (a VMM spawned by desktopd), with `cat` echoing the frames.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { fileURLToPath } from "node:url";
import type { FrameTransport } from "@desktopd/core";
import { buildSync } from "esbuild";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { stdioTransport } from "../../src/transport/stdio.js";
import { arpReply, arpRequest, icmpEchoRequest, udpRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { framed, until } from "../fixtures/streams.js";

const dir = mkdtempSync(join(tmpdir(), "dtd-stdio-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const children: ChildProcessWithoutNullStreams[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** Reads qemu-framed frames from a stream by hand. */
function reader(stream: NodeJS.ReadableStream) {
  const r = { frames: [] as Buffer[], pending: Buffer.alloc(0), ended: false };
  stream.on("data", (chunk: Buffer) => {
    r.pending = Buffer.concat([r.pending, chunk]);
    while (r.pending.length >= 4 && r.pending.length >= 4 + r.pending.readUInt32BE(0)) {
      const len = r.pending.readUInt32BE(0);
      r.frames.push(Buffer.from(r.pending.subarray(4, 4 + len)));
      r.pending = r.pending.subarray(4 + len);
    }
  });
  stream.on("end", () => {
    r.ended = true;
  });
  return r;
}

/** The frame with its source and destination MACs swapped: what the reflector answers. */
function swapped(frame: Buffer): Buffer {
  const out = Buffer.from(frame);
  frame.copy(out, 0, 6, 12);
  frame.copy(out, 6, 0, 6);
  return out;
}

describe("stdioTransport on the process's own stdin and stdout", { timeout: 30_000 }, () => {
  let reflector: string;

  beforeAll(() => {
    // The transport, bundled for a plain `node` child: no test runner in between.
    buildSync({
      entryPoints: [fileURLToPath(new URL("../../src/transport/stdio.ts", import.meta.url))],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile: join(dir, "stdio.mjs"),
    });
    reflector = join(dir, "reflector.mjs");
    writeFileSync(
      reflector,
      `import { stdioTransport } from "./stdio.mjs";
const link = stdioTransport({ maxFrame: 9018 });
link.start({
  onFrame(frame) {
    const reply = Buffer.from(frame);
    frame.copy(reply, 0, 6, 12);
    frame.copy(reply, 6, 0, 6);
    link.send(reply);
  },
  onClose(error) {
    process.stderr.write(JSON.stringify({ name: link.name, stats: link.stats, error: error?.message ?? null }) + "\\n");
  },
});
`,
    );
  });

  function start() {
    const child = spawn(process.execPath, [reflector]);
    children.push(child);
    const out = reader(child.stdout);
    let stderr = "";
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const exited = once(child, "exit") as Promise<[number | null, string | null]>;
    return {
      child,
      out,
      exited,
      report: () =>
        JSON.parse(stderr.trim()) as { name: string; stats: FrameTransport["stats"]; error: string },
    };
  }

  it("answers frames written to its stdin on its stdout, and ends when stdin ends", async () => {
    const { child, out, exited, report } = start();
    const inputs = [arpRequest, icmpEchoRequest, udpRequest].map(bytes);
    const jumbo = Buffer.alloc(9018, 0x77);
    bytes(udpRequest).copy(jumbo, 0, 0, 14);
    // One write with several frames, then a frame dribbled in pieces.
    child.stdin.write(framed(...inputs));
    const piecewise = framed(jumbo);
    for (let i = 0; i < piecewise.length; i += 1000) {
      child.stdin.write(piecewise.subarray(i, i + 1000));
      await new Promise((r) => setTimeout(r, 1));
    }
    await until(() => out.frames.length === 4, "four replies");
    expect(out.frames.map((f) => f.toString("hex"))).toEqual(
      [...inputs, jumbo].map((f) => swapped(f).toString("hex")),
    );
    child.stdin.end();
    const [code] = await exited;
    expect(code).toBe(0);
    expect(out.ended).toBe(true);
    expect(out.pending.length).toBe(0);
    const r = report();
    expect(r.name).toBe("stdio");
    expect(r.error).toBeNull();
    const total = inputs.reduce((s, f) => s + f.length, 0) + jumbo.length;
    expect(r.stats).toMatchObject({ framesIn: 4, framesOut: 4, bytesIn: total, bytesOut: total, drops: {} });
  });

  it("counts a frame cut short by the end of stdin and drops oversize frames", async () => {
    const { child, out, exited, report } = start();
    child.stdin.write(framed(bytes(arpRequest), Buffer.alloc(9019)));
    child.stdin.end(framed(bytes(udpRequest)).subarray(0, 20));
    const [code] = await exited;
    expect(code).toBe(0);
    expect(out.frames.map((f) => f.toString("hex"))).toEqual([swapped(bytes(arpRequest)).toString("hex")]);
    expect(report().stats).toMatchObject({ framesIn: 1, drops: { oversize: 1, truncated: 1 } });
  });

  it("closes the link on a stream that is not the framing, and its stdout ends", async () => {
    const { child, out, exited, report } = start();
    child.stdin.write(Buffer.concat([framed(bytes(arpReply)), Buffer.from("SSH-2.0-OpenSSH_9.6\r\n")]));
    await until(() => out.ended, "the child's stdout to end");
    expect(out.frames).toHaveLength(1);
    child.stdin.end();
    const [code] = await exited;
    expect(code).toBe(0);
    const r = report();
    expect(r.error).toMatch(/exceeds/);
    expect(r.stats.drops).toEqual({ "bad-length": 1 });
  });
});

describe("stdioTransport on a child's pipes", { timeout: 30_000 }, () => {
  it("carries frames through `cat` and back, across pipe-sized chunks", async () => {
    const cat = spawn("cat");
    children.push(cat);
    const link = stdioTransport({ stdin: cat.stdout, stdout: cat.stdin, name: "vmm" });
    expect(link.name).toBe("vmm");
    const got: Buffer[] = [];
    let closed = false;
    link.start({ onFrame: (f) => got.push(Buffer.from(f)), onClose: () => (closed = true) });
    // Sizes around and beyond a pipe's 64 KiB, in several turns of the event loop.
    const sent: Buffer[] = [];
    for (const size of [14, 60, 1514, 9018, 65_534, 70_000, 42, 65_534]) {
      const f = Buffer.alloc(size);
      for (let i = 0; i < size; i++) f[i] = (i * 31 + size) & 0xff;
      sent.push(f);
      link.send(f);
      if (size > 1000) await new Promise((r) => setImmediate(r));
    }
    // 70000 bytes is beyond the largest frame (MTU 65520 + Ethernet + VLAN): skipped on the way in.
    const expected = sent.filter((f) => f.length !== 70_000);
    await until(() => got.length === expected.length && link.stats.drops.oversize === 1, "the echoed frames");
    expect(got.map((f) => f.length)).toEqual(expected.map((f) => f.length));
    for (const [i, f] of got.entries()) expect(f.equals(expected[i]!)).toBe(true);
    expect(link.stats).toMatchObject({ framesIn: expected.length, framesOut: sent.length });
    expect(link.stats.drops).toEqual({ oversize: 1 });

    // Closing ends cat's stdin: cat exits, its stdout ends, and nothing is reported twice.
    const exited = once(cat, "exit");
    await link.close();
    expect(closed).toBe(true);
    const [code] = await exited;
    expect(code).toBe(0);
    link.send(Buffer.alloc(60));
    expect(link.stats.drops["link-down"]).toBe(1);
  });

  it("reports the close when the child exits", async () => {
    const child = spawn(process.execPath, ["-e", "process.exit(3)"]);
    children.push(child);
    const link = stdioTransport({ stdin: child.stdout, stdout: child.stdin });
    let closed = 0;
    link.start({ onFrame: () => {}, onClose: () => closed++ });
    await until(() => closed === 1, "the close");
    await link.close();
    expect(closed).toBe(1);
  });
});

describe("stdioTransport on streams it does not own", () => {
  it("ends stdout but leaves stdin undestroyed on close", async () => {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const out = reader(stdout);
    const link = stdioTransport({ stdin, stdout });
    expect(link.name).toBe("stdio");
    const got: Buffer[] = [];
    link.start({ onFrame: (f) => got.push(f) });
    stdin.write(framed(bytes(arpRequest)));
    await until(() => got.length === 1, "a frame");
    link.send(bytes(arpReply));
    await link.close();
    expect(stdout.writableEnded).toBe(true);
    await until(() => out.ended, "stdout to end");
    // The frame sent in the same turn as close() is not lost.
    expect(out.frames.map((f) => f.toString("hex"))).toEqual([arpReply]);
    expect(stdin.destroyed).toBe(false);
    // Whatever arrives on stdin later is no longer read as frames.
    stdin.write(framed(bytes(udpRequest)));
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toHaveLength(1);
  });
});
