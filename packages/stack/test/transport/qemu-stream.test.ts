/**
 * qemu's stream netdev over real sockets: desktopd listening on a unix path and on TCP, and
 * connecting to a "qemu" that listens. The peer is a plain net.Socket writing and reading the
 * framing by hand (a 4-byte big-endian length before each frame), as qemu does.
 */
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FrameTransport } from "@desktopd/core";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { TransportError } from "../../src/errors.js";
import {
  connectQemuStream,
  formatStreamAddress,
  listenQemuStream,
  parseStreamAddress,
  type StreamAddress,
} from "../../src/transport/qemu-stream.js";
import {
  arpReply,
  arpRequest,
  icmpEchoReply,
  icmpEchoRequest,
  udpReply,
  udpRequest,
} from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { framed, until } from "../fixtures/streams.js";

const dir = mkdtempSync(join(tmpdir(), "dtd-qemu-stream-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const socketPath = () => join(dir, `q${++n}.sock`);

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A started link that records its frames and its close. */
interface Recorded {
  link: FrameTransport;
  frames: Buffer[];
  closed: boolean;
  closeError: Error | undefined;
}

function record(link: FrameTransport): Recorded {
  const r: Recorded = { link, frames: [], closed: false, closeError: undefined };
  link.start({
    onFrame: (f) => r.frames.push(Buffer.from(f)),
    onClose: (error) => {
      expect(r.closed).toBe(false); // reported once
      r.closed = true;
      r.closeError = error;
    },
  });
  return r;
}

/** Every link a listener or connector reports, started and recorded. */
function links() {
  const all: Recorded[] = [];
  return { all, onLink: (link: FrameTransport) => all.push(record(link)) };
}

/** The peer's side: a socket reading frames with the qemu framing. */
class Peer {
  readonly frames: Buffer[] = [];
  private pending = Buffer.alloc(0);
  ended = false;

  constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 4) {
        const len = this.pending.readUInt32BE(0);
        if (this.pending.length < 4 + len) break;
        this.frames.push(Buffer.from(this.pending.subarray(4, 4 + len)));
        this.pending = this.pending.subarray(4 + len);
      }
    });
    socket.on("close", () => {
      this.ended = true;
    });
    socket.on("error", () => {});
  }

  get leftover(): number {
    return this.pending.length;
  }

  static async connect(address: StreamAddress): Promise<Peer> {
    const socket = "path" in address ? net.connect(address.path) : net.connect(address.port, address.host);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    const peer = new Peer(socket);
    cleanups.push(() => socket.destroy());
    return peer;
  }
}

async function listen(address: StreamAddress, onLink: (l: FrameTransport) => void, options = {}) {
  const listener = await listenQemuStream(address, onLink, options);
  cleanups.push(() => listener.close());
  return listener;
}

const [arpQ, arpA, pingQ, pingA, udpQ, udpA] = [
  bytes(arpRequest),
  bytes(arpReply),
  bytes(icmpEchoRequest),
  bytes(icmpEchoReply),
  bytes(udpRequest),
  bytes(udpReply),
] as const;

describe.each([
  ["unix", (): StreamAddress => ({ path: socketPath() })],
  ["tcp", (): StreamAddress => ({ host: "127.0.0.1", port: 0 })],
])("listenQemuStream on %s", (kind, address) => {
  it("carries frames both ways on each accepted connection", async () => {
    const { all, onLink } = links();
    const listener = await listen(address(), onLink);
    if (kind === "tcp") {
      expect("port" in listener.address && listener.address.port).toBeGreaterThan(0);
    } else {
      expect(statSync((listener.address as { path: string }).path).isSocket()).toBe(true);
    }
    const peer = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the link");
    const { link } = all[0]!;
    expect(link.name).toBe(`qemu:${formatStreamAddress(listener.address)}#1`);

    // Several frames in one write.
    peer.socket.write(framed(arpQ, pingQ, udpQ));
    await until(() => all[0]!.frames.length === 3, "three frames");
    expect(all[0]!.frames.map((f) => f.toString("hex"))).toEqual([arpRequest, icmpEchoRequest, udpRequest]);
    expect(link.stats).toMatchObject({ framesIn: 3, bytesIn: arpQ.length + pingQ.length + udpQ.length });

    // Frames sent in one turn leave together; the peer reads each with its prefix.
    link.send(Buffer.from(arpA));
    link.send(Buffer.from(pingA));
    link.send(Buffer.from(udpA));
    await until(() => peer.frames.length === 3, "three frames at the peer");
    expect(peer.frames.map((f) => f.toString("hex"))).toEqual([arpReply, icmpEchoReply, udpReply]);
    expect(peer.leftover).toBe(0);
    expect(link.stats).toMatchObject({ framesOut: 3, bytesOut: arpA.length + pingA.length + udpA.length });
    expect(link.stats.drops).toEqual({});
  });

  /** A frame each way on a link whose peer did nothing wrong. */
  async function expectCarriesOn(peer: Peer, recorded: Recorded): Promise<void> {
    const before = peer.frames.length;
    peer.socket.write(framed(pingQ));
    recorded.link.send(Buffer.from(pingA));
    await until(
      () => recorded.frames.length === 1 && peer.frames.length === before + 1,
      "the bystander's frames both ways",
    );
    expect(recorded.closed).toBe(false);
    expect(recorded.link.stats.drops).toEqual({});
  }

  it("closes only the link whose peer sends garbage; a second connection keeps working", async () => {
    const { all, onLink } = links();
    const listener = await listen(address(), onLink);
    const bad = await Peer.connect(listener.address);
    await until(() => all.length === 1, "first link");
    const good = await Peer.connect(listener.address);
    await until(() => all.length === 2, "second link");
    const [badLink, goodLink] = all as [Recorded, Recorded];

    // A valid frame, then something that is not the framing at all (an HTTP request).
    bad.socket.write(Buffer.concat([framed(arpQ), Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]));
    await until(() => badLink.closed, "the bad link to close");
    expect(badLink.frames.map((f) => f.toString("hex"))).toEqual([arpRequest]);
    expect(badLink.closeError).toBeInstanceOf(Error);
    expect(badLink.closeError!.message).toMatch(/exceeds/);
    expect(badLink.link.stats.drops["bad-length"]).toBe(1);
    await until(() => bad.ended, "the bad peer's socket to close");
    badLink.link.send(Buffer.from(arpA));
    expect(badLink.link.stats.drops["link-down"]).toBe(1);

    good.socket.write(framed(pingQ));
    goodLink.link.send(Buffer.from(pingA));
    await until(() => goodLink.frames.length === 1 && good.frames.length === 1, "the good link");
    expect(goodLink.closed).toBe(false);
    expect(good.frames[0]!.equals(pingA)).toBe(true);
    expect(goodLink.link.stats.drops).toEqual({});
  });

  it("closes a link on a 1 GB length and on a little-endian length; a bystander carries on", async () => {
    const { all, onLink } = links();
    const listener = await listen(address(), onLink);
    const bystander = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the bystander's link");
    const calm = all.shift()!;
    const huge = await Peer.connect(listener.address);
    const swapped = await Peer.connect(listener.address);
    await until(() => all.length === 2, "two links");
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1 << 30);
    huge.socket.write(Buffer.concat([header, Buffer.alloc(1000)]));
    // The length of a 42-byte ARP frame written little-endian: 0x2a000000.
    const le = Buffer.alloc(4);
    le.writeUInt32LE(arpQ.length);
    swapped.socket.write(Buffer.concat([le, arpQ]));
    await until(() => all.every((r) => r.closed), "both links to close");
    for (const r of all) {
      expect(r.frames).toEqual([]);
      expect(r.link.stats.drops["bad-length"]).toBe(1);
    }
    await until(() => huge.ended && swapped.ended, "both peers to see the close");
    await expectCarriesOn(bystander, calm);
  });

  it("skips an oversize frame and a runt but keeps the link", async () => {
    const { all, onLink } = links();
    const listener = await listen(address(), onLink, { maxFrame: 1518 });
    const peer = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the link");
    peer.socket.write(framed(arpQ, Buffer.alloc(9000, 1), Buffer.alloc(10, 2), udpQ));
    await until(() => all[0]!.frames.length === 2, "two frames");
    expect(all[0]!.frames.map((f) => f.toString("hex"))).toEqual([arpRequest, udpRequest]);
    expect(all[0]!.link.stats.drops).toEqual({ oversize: 1, truncated: 1 });
    expect(all[0]!.closed).toBe(false);
  });

  it("counts a frame cut short when the peer closes mid-frame, then reports the close", async () => {
    const { all, onLink } = links();
    const listener = await listen(address(), onLink);
    const bystander = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the bystander's link");
    const calm = all.shift()!;
    const peer = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the link");
    const whole = framed(pingQ);
    peer.socket.end(Buffer.concat([framed(arpQ), whole.subarray(0, 30)]));
    await until(() => all[0]!.closed, "the close");
    expect(all[0]!.frames.map((f) => f.toString("hex"))).toEqual([arpRequest]);
    expect(all[0]!.link.stats.drops).toEqual({ truncated: 1 });
    expect(all[0]!.closeError).toBeUndefined();
    await expectCarriesOn(bystander, calm);
  });

  it("a clean close between frames counts nothing", async () => {
    const { all, onLink } = links();
    const listener = await listen(address(), onLink);
    const peer = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the link");
    peer.socket.end(framed(arpQ));
    await until(() => all[0]!.closed, "the close");
    expect(all[0]!.frames).toHaveLength(1);
    expect(all[0]!.link.stats.drops).toEqual({});
  });

  it("gives a reconnecting peer a new link", async () => {
    const { all, onLink } = links();
    const listener = await listen(address(), onLink);
    const first = await Peer.connect(listener.address);
    await until(() => all.length === 1, "first link");
    first.socket.destroy();
    await until(() => all[0]!.closed, "first link to close");
    const second = await Peer.connect(listener.address);
    await until(() => all.length === 2, "second link");
    expect(all[1]!.link).not.toBe(all[0]!.link);
    expect(all[1]!.link.name).toMatch(/#2$/);
    second.socket.write(framed(udpQ));
    all[1]!.link.send(Buffer.from(udpA));
    await until(() => all[1]!.frames.length === 1 && second.frames.length === 1, "the new link");
    all[0]!.link.send(Buffer.from(udpA));
    expect(all[0]!.link.stats.drops["link-down"]).toBe(1);
    expect(second.frames).toHaveLength(1);
  });

  it("closing the link from our side closes the peer's socket", async () => {
    const { all, onLink } = links();
    const listener = await listen(address(), onLink);
    const peer = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the link");
    all[0]!.link.send(Buffer.from(arpA));
    await all[0]!.link.close();
    expect(all[0]!.closed).toBe(true);
    await until(() => peer.ended, "the peer to see the close");
    // What was sent before the close still arrived.
    expect(peer.frames.map((f) => f.toString("hex"))).toEqual([arpReply]);
  });

  it("closing the listener closes its links and stops accepting", async () => {
    const { all, onLink } = links();
    const listener = await listenQemuStream(address(), onLink);
    const peer = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the link");
    await listener.close();
    await until(() => all[0]!.closed && peer.ended, "the link to close");
    await expect(Peer.connect(listener.address)).rejects.toThrow();
    if ("path" in listener.address) expect(existsSync(listener.address.path)).toBe(false);
  });
});

describe("listenQemuStream on a path already there", { timeout: 30_000 }, () => {
  it("replaces a stale socket file left by a process that died", async () => {
    const path = socketPath();
    // A listener that is SIGKILLed cannot unlink its socket.
    const child = spawnSync(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    expect(child.signal).toBe("SIGKILL");
    expect(statSync(path).isSocket()).toBe(true);
    await expect(Peer.connect({ path })).rejects.toThrow(/ECONNREFUSED/);

    const { all, onLink } = links();
    const listener = await listen({ path }, onLink);
    const peer = await Peer.connect({ path });
    await until(() => all.length === 1, "the link");
    peer.socket.write(framed(arpQ));
    await until(() => all[0]!.frames.length === 1, "a frame");
    expect(listener.address).toEqual({ path });
  });

  it("refuses a path where a live socket listens, and leaves it alone", async () => {
    const path = socketPath();
    // The probe's connection is reset at once: the owner must not die of it.
    const owner = net.createServer((s) => s.on("error", () => {}).end("still mine"));
    await new Promise<void>((r) => owner.listen(path, r));
    cleanups.push(() => new Promise((r) => owner.close(r)));
    const onLink = () => {
      throw new Error("no link expected");
    };
    const attempt = listenQemuStream({ path }, onLink);
    await expect(attempt).rejects.toBeInstanceOf(TransportError);
    await expect(listenQemuStream({ path }, onLink)).rejects.toThrow(/in use/);
    // The owner still has its socket.
    const peer = await Peer.connect({ path });
    const reply = await new Promise<string>((resolve) => {
      let text = "";
      peer.socket.on("data", (d) => {
        text += d;
      });
      peer.socket.on("end", () => resolve(text));
    });
    expect(reply).toBe("still mine");
  });

  it("refuses a path that is not a socket, and leaves the file alone", async () => {
    // A mistyped path pointing at a disk image must not cost the image.
    const path = join(dir, "disk.img");
    writeFileSync(path, "precious");
    await expect(listenQemuStream({ path }, () => {})).rejects.toBeInstanceOf(TransportError);
    expect(readFileSync(path, "utf8")).toBe("precious");
  });

  it("reports a TCP port in use as a TransportError", async () => {
    const owner = net.createServer();
    await new Promise<void>((r) => owner.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => owner.close(r)));
    const port = (owner.address() as net.AddressInfo).port;
    await expect(listenQemuStream({ host: "127.0.0.1", port }, () => {})).rejects.toBeInstanceOf(
      TransportError,
    );
  });
});

describe("queue towards a peer that does not read", { timeout: 30_000 }, () => {
  it("drops frames as queue-full beyond maxQueuedBytes and delivers the rest intact, in order", async () => {
    const { all, onLink } = links();
    const maxQueuedBytes = 64 * 1024;
    const listener = await listen({ path: socketPath() }, onLink, { maxQueuedBytes });
    const peer = await Peer.connect(listener.address);
    await until(() => all.length === 1, "the link");
    const { link } = all[0]!;
    const numbered = (i: number) => {
      const f = Buffer.alloc(1500, i & 0xff);
      f.writeUInt32BE(i, 14);
      return f;
    };
    let sent = 0;
    // While the peer reads, 8 frames a turn (12 KB) never fill the queue.
    for (let turn = 0; turn < 20; turn++) {
      for (let i = 0; i < 8; i++) link.send(numbered(sent++));
      await new Promise((r) => setImmediate(r));
    }
    await until(() => peer.frames.length === sent, "the first frames");
    expect(link.stats.drops).toEqual({});

    // The peer stops reading: the kernel buffers fill, then the queue, then frames are dropped.
    peer.socket.pause();
    for (let turn = 0; turn < 2000 && !link.stats.drops["queue-full"]; turn++) {
      for (let i = 0; i < 8; i++) link.send(numbered(sent++));
      await new Promise((r) => setTimeout(r, 1));
    }
    const dropped = link.stats.drops["queue-full"] ?? 0;
    expect(dropped).toBeGreaterThan(0);
    expect(link.stats.framesOut + dropped).toBe(sent);
    expect(all[0]!.closed).toBe(false);

    peer.socket.resume();
    await until(() => peer.frames.length === link.stats.framesOut, "the queued frames");
    const ids = peer.frames.map((f) => f.readUInt32BE(14));
    for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
    for (const f of peer.frames)
      expect(f.subarray(18).every((b) => b === (f.readUInt32BE(14) & 0xff))).toBe(true);
    expect(peer.leftover).toBe(0);
  });
});

describe("connectQemuStream", { timeout: 30_000 }, () => {
  it("keeps trying until qemu listens, and connects again after qemu restarts", async () => {
    const path = socketPath();
    const { all, onLink } = links();
    const connector = connectQemuStream({ path }, onLink, { retryMs: 20 });
    cleanups.push(() => connector.close());
    await new Promise((r) => setTimeout(r, 100));
    expect(all).toHaveLength(0);

    // "qemu" comes up late: a server that greets with a frame and records what it is sent.
    const start = async () => {
      const peers: Peer[] = [];
      const server = net.createServer((s) => {
        const p = new Peer(s);
        peers.push(p);
        s.write(framed(arpQ));
      });
      await new Promise<void>((r) => server.listen(path, r));
      return { server, peers };
    };
    const first = await start();
    await until(() => all.length === 1 && all[0]!.frames.length === 1, "the first link");
    expect(all[0]!.frames[0]!.equals(arpQ)).toBe(true);
    all[0]!.link.send(Buffer.from(arpA));
    await until(() => first.peers[0]?.frames.length === 1, "a frame at qemu");
    expect(first.peers[0]!.frames[0]!.equals(arpA)).toBe(true);

    // qemu exits: the link closes, and the connector retries until qemu is back.
    for (const p of first.peers) p.socket.destroy();
    await new Promise<void>((r) => first.server.close(() => r()));
    await until(() => all[0]!.closed, "the first link to close");
    await new Promise((r) => setTimeout(r, 100));
    expect(all).toHaveLength(1);
    const second = await start();
    cleanups.push(() => new Promise((r) => second.server.close(r)));
    await until(() => all.length === 2 && all[1]!.frames.length === 1, "the second link");
    expect(all[1]!.link.name).toMatch(/#2$/);
    all[1]!.link.send(Buffer.from(udpA));
    await until(() => second.peers[0]?.frames.length === 1, "a frame at the new qemu");

    // Closed: the link goes, and no new connection is made.
    await connector.close();
    await until(() => all[1]!.closed, "the second link to close");
    await new Promise((r) => setTimeout(r, 100));
    expect(all).toHaveLength(2);
    expect(second.peers).toHaveLength(1);
  });

  it("connects over TCP", async () => {
    const peers: Peer[] = [];
    const server = net.createServer((s) => peers.push(new Peer(s)));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => server.close(r)));
    const port = (server.address() as net.AddressInfo).port;
    const { all, onLink } = links();
    const connector = connectQemuStream({ host: "127.0.0.1", port }, onLink, { retryMs: 20 });
    cleanups.push(() => connector.close());
    await until(() => all.length === 1 && peers.length === 1, "the link");
    expect(all[0]!.link.name).toBe(`qemu:127.0.0.1:${port}#1`);
    peers[0]!.socket.write(framed(pingQ));
    all[0]!.link.send(Buffer.from(pingA));
    await until(() => all[0]!.frames.length === 1 && peers[0]!.frames.length === 1, "frames both ways");
    expect(all[0]!.frames[0]!.equals(pingQ)).toBe(true);
    expect(peers[0]!.frames[0]!.equals(pingA)).toBe(true);
  });
});

describe("parseStreamAddress / formatStreamAddress", () => {
  it.each([
    ["/run/user/1000/desktopd/qemu.sock", { path: "/run/user/1000/desktopd/qemu.sock" }],
    ["unix:/tmp/q.sock", { path: "/tmp/q.sock" }],
    ["unix:relative.sock", { path: "relative.sock" }],
    ["qemu.sock", { path: "qemu.sock" }],
    ["./dir:with:colons/q.sock", { path: "./dir:with:colons/q.sock" }],
    ["127.0.0.1:5555", { host: "127.0.0.1", port: 5555 }],
    ["tcp:127.0.0.1:5555", { host: "127.0.0.1", port: 5555 }],
    ["localhost:0", { host: "localhost", port: 0 }],
    ["tcp:my-host.example:65535", { host: "my-host.example", port: 65535 }],
    ["[::1]:1234", { host: "::1", port: 1234 }],
    ["tcp:[fd00::2]:80", { host: "fd00::2", port: 80 }],
  ])("%s", (text, expected) => {
    expect(parseStreamAddress(text)).toEqual(expected);
  });

  it.each(["unix:", "127.0.0.1:65536", "host:", "tcp:host", "host:port", "::1:80", "a:b:c"])(
    "rejects %s",
    (text) => {
      expect(parseStreamAddress(text)).toBeUndefined();
    },
  );

  it("formats what it parses back to an equivalent address", () => {
    for (const text of ["/tmp/q.sock", "127.0.0.1:5555", "[::1]:1234", "localhost:80"]) {
      const a = parseStreamAddress(text)!;
      expect(formatStreamAddress(a)).toBe(text);
      expect(parseStreamAddress(formatStreamAddress(a))).toEqual(a);
    }
    expect(formatStreamAddress({ host: "fd00::2", port: 80 })).toBe("[fd00::2]:80");
  });
});

describe("listenQemuStream socket file", { timeout: 30_000 }, () => {
  it("is the owner's only, whatever the umask", async () => {
    const listener = await listen({ path: socketPath() }, () => {});
    expect(statSync((listener.address as { path: string }).path).mode & 0o777).toBe(0o600);
  });

  it("refuses a symlink at the path, even to a stale socket", async () => {
    const stale = socketPath();
    const child = spawnSync(process.execPath, [
      "-e",
      `require("node:net").createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, "SIGKILL"))`,
    ]);
    expect(child.signal).toBe("SIGKILL");
    const path = socketPath();
    symlinkSync(stale, path);
    await expect(listenQemuStream({ path }, () => {})).rejects.toThrow(/not a socket/);
    expect(lstatSync(path).isSymbolicLink()).toBe(true);
  });
});

describe("listenQemuStream bounds", { timeout: 30_000 }, () => {
  it("closes connections beyond maxLinks and makes no link of them", async () => {
    const { all, onLink } = links();
    const listener = await listen({ path: socketPath() }, onLink, { maxLinks: 1 });
    await Peer.connect(listener.address);
    await until(() => all.length === 1, "the first link");
    const second = await Peer.connect(listener.address);
    await until(() => second.ended, "the second connection to be closed");
    expect(all).toHaveLength(1);
    expect(all[0]!.closed).toBe(false);
  });
});

describe("listenQemuStream on a path too long for a unix socket", () => {
  it("refuses it instead of binding a truncated name", async () => {
    const path = join(dir, "x".repeat(120));
    await expect(listenQemuStream({ path }, () => {})).rejects.toThrow(/1\.\.107 bytes/);
    expect(readdirSync(dir).filter((f) => f.startsWith("xxxx"))).toEqual([]);
  });

  it("refuses it for connecting too, instead of retrying a truncated name for ever", () => {
    expect(() => connectQemuStream({ path: join(dir, "y".repeat(120)) }, () => {})).toThrow(/1\.\.107 bytes/);
  });
});
