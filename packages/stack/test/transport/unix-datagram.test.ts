/**
 * Guest links over a unix datagram socket (vfkit, krunkit, qemu `-netdev dgram`), against real
 * peers in other processes: small Python programs bound in a temporary directory that send
 * captured frames the way a VMM does (one Ethernet frame per datagram, from their own bound
 * address) and report what they receive.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { FrameTransport } from "@desktopd/core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TransportError } from "../../src/errors.js";
import {
  listenUnixDatagram,
  type UnixDatagramOptions,
  unixDatagramQueueLimit,
} from "../../src/transport/unix-datagram.js";
import { UnixDgramSocket } from "../../src/transport/unix-dgram-socket.js";
import {
  arpReply,
  arpRequest,
  icmpEchoReply,
  icmpEchoRequest,
  udpReply,
  udpRequest,
} from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { until } from "../fixtures/streams.js";

const dir = mkdtempSync(join(tmpdir(), "dtd-unixgram-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const path = (name: string) => join(dir, `${name}-${++n}.sock`);

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

const [arpQ, arpA, pingQ, pingA, udpQ, udpA] = [
  bytes(arpRequest),
  bytes(arpReply),
  bytes(icmpEchoRequest),
  bytes(icmpEchoReply),
  bytes(udpRequest),
  bytes(udpReply),
] as const;

/**
 * The peer: binds PATH (or nothing, for "-"), prints {"recv", "from"} for every datagram once
 * reading, and takes commands on stdin: "send TO HEX", "read" (start reading), "exit [unlink]",
 * "bind PATH" (a second socket that stays bound and silent).
 */
const PEER_PY = `
import json, os, socket, sys, threading
path = sys.argv[1]
read_now = sys.argv[2] == "read"
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
if path != "-":
    s.bind(path)
lock = threading.Lock()
keep = []
def emit(obj):
    with lock:
        sys.stdout.write(json.dumps(obj) + "\\n")
        sys.stdout.flush()
def reader():
    while True:
        try:
            data, addr = s.recvfrom(1 << 17)
        except OSError:
            return
        emit({"recv": data.hex(), "from": addr if isinstance(addr, str) else (addr or b"").decode()})
def start_reading():
    threading.Thread(target=reader, daemon=True).start()
if read_now and path != "-":
    start_reading()
emit({"ready": True})
for line in sys.stdin:
    cmd, _, arg = line.strip().partition(" ")
    if cmd == "send":
        to, _, data = arg.partition(" ")
        try:
            s.sendto(bytes.fromhex(data), to)
            emit({"sent": len(data) // 2})
        except OSError as e:
            emit({"error": e.errno})
    elif cmd == "read":
        start_reading()
        emit({"reading": True})
    elif cmd == "bind":
        b = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        b.bind(arg)
        keep.append(b)
        emit({"bound": arg})
    elif cmd == "exit":
        s.close()
        if arg == "unlink" and path != "-":
            os.unlink(path)
        emit({"exited": True})
        break
`;

let peerScript: string;
beforeAll(() => {
  peerScript = join(dir, "peer.py");
  writeFileSync(peerScript, PEER_PY);
});

/** A VMM's end of the link, in a process of its own. */
class Peer {
  readonly received: { data: Buffer; from: string }[] = [];
  private readonly replies: Record<string, unknown>[] = [];
  private readonly child: ChildProcessWithoutNullStreams;
  exited = false;

  private constructor(
    readonly path: string | undefined,
    reading: boolean,
  ) {
    this.child = spawn("python3", ["-u", peerScript, path ?? "-", reading ? "read" : "noread"]);
    createInterface({ input: this.child.stdout }).on("line", (line) => {
      const msg = JSON.parse(line) as { recv?: string; from?: string };
      if (msg.recv !== undefined) this.received.push({ data: Buffer.from(msg.recv, "hex"), from: msg.from! });
      else this.replies.push(msg);
    });
    this.child.on("exit", () => {
      this.exited = true;
    });
    cleanups.push(() => {
      if (!this.exited) this.child.kill("SIGKILL");
    });
  }

  static async start(path: string | undefined, reading = true): Promise<Peer> {
    const peer = new Peer(path, reading);
    await peer.reply("ready");
    return peer;
  }

  private async reply(key: string): Promise<Record<string, unknown>> {
    await until(() => this.replies.length > 0, `peer reply "${key}"`);
    const r = this.replies.shift()!;
    if (!(key in r)) throw new Error(`peer answered ${JSON.stringify(r)} instead of ${key}`);
    return r;
  }

  /** Sends one datagram to `to`; rejects with the errno when the kernel refuses it. */
  async send(to: string, datagram: Buffer): Promise<void> {
    this.child.stdin.write(`send ${to} ${datagram.toString("hex")}\n`);
    await until(() => this.replies.length > 0, "the send");
    const r = this.replies.shift()!;
    if ("error" in r) throw new Error(`sendto failed: errno ${r.error}`);
  }

  async startReading(): Promise<void> {
    this.child.stdin.write("read\n");
    await this.reply("reading");
  }

  /** Binds another socket at `at` that never reads (a live socket owned by this process). */
  async bindSilent(at: string): Promise<void> {
    this.child.stdin.write(`bind ${at}\n`);
    await this.reply("bound");
  }

  /** The VMM exits: its socket closes and, with `unlink`, its path is removed. */
  async exit(unlink: boolean): Promise<void> {
    this.child.stdin.write(unlink ? "exit unlink\n" : "exit\n");
    await this.reply("exited");
    await until(() => this.exited, "the peer to exit");
  }
}

interface Recorded {
  link: FrameTransport;
  frames: Buffer[];
  closed: boolean;
  closeError: Error | undefined;
}

async function listen(at: string, options: UnixDatagramOptions = {}) {
  const all: Recorded[] = [];
  const listener = await listenUnixDatagram(
    at,
    (link) => {
      const r: Recorded = { link, frames: [], closed: false, closeError: undefined };
      all.push(r);
      link.start({
        onFrame: (f) => r.frames.push(Buffer.from(f)),
        onClose: (error) => {
          expect(r.closed).toBe(false);
          r.closed = true;
          r.closeError = error;
        },
      });
    },
    options,
  );
  cleanups.push(() => listener.close());
  return { listener, all };
}

describe("listenUnixDatagram", { timeout: 30_000 }, () => {
  it("makes a link of a peer and carries frames both ways, replies to the peer's address", async () => {
    const { listener, all } = await listen(path("desktopd"));
    expect(statSync(listener.path).isSocket()).toBe(true);
    const peer = await Peer.start(path("vfkit"));
    await peer.send(listener.path, arpQ);
    await peer.send(listener.path, pingQ);
    await until(() => all[0]?.frames.length === 2, "two frames");
    expect(all).toHaveLength(1);
    const { link } = all[0]!;
    expect(link.name).toBe(`unixgram:${peer.path}`);
    expect(all[0]!.frames.map((f) => f.toString("hex"))).toEqual([arpRequest, icmpEchoRequest]);
    expect(link.stats).toMatchObject({ framesIn: 2, bytesIn: arpQ.length + pingQ.length });

    link.send(Buffer.from(arpA));
    link.send(Buffer.from(pingA));
    await until(() => peer.received.length === 2, "two replies");
    expect(peer.received.map((r) => r.data.toString("hex"))).toEqual([arpReply, icmpEchoReply]);
    for (const r of peer.received) expect(r.from).toBe(listener.path);
    expect(link.stats).toMatchObject({ framesOut: 2, bytesOut: arpA.length + pingA.length, drops: {} });
    expect(listener.stats.drops).toEqual({});
  });

  it("gives two peers two links, and each gets only its own replies", async () => {
    const { listener, all } = await listen(path("desktopd"));
    const [a, b] = await Promise.all([Peer.start(path("vm-a")), Peer.start(path("vm-b"))]);
    await a.send(listener.path, arpQ);
    await b.send(listener.path, udpQ);
    await a.send(listener.path, pingQ);
    await until(() => all.length === 2 && all[0]!.frames.length + all[1]!.frames.length === 3, "frames");
    const linkOf = (p: Peer) => all.find((r) => r.link.name === `unixgram:${p.path}`)!;
    expect(linkOf(a).frames.map((f) => f.toString("hex"))).toEqual([arpRequest, icmpEchoRequest]);
    expect(linkOf(b).frames.map((f) => f.toString("hex"))).toEqual([udpRequest]);

    linkOf(b).link.send(Buffer.from(udpA));
    linkOf(a).link.send(Buffer.from(pingA));
    await until(() => a.received.length === 1 && b.received.length === 1, "one reply each");
    await pause(30);
    expect(a.received.map((r) => r.data.toString("hex"))).toEqual([icmpEchoReply]);
    expect(b.received.map((r) => r.data.toString("hex"))).toEqual([udpReply]);
  });

  it("swallows the old vfkit handshake: the link exists, nothing is delivered", async () => {
    const { listener, all } = await listen(path("desktopd"));
    const peer = await Peer.start(path("vfkit"));
    await peer.send(listener.path, Buffer.from("VFKT"));
    await until(() => all.length === 1, "the link");
    await pause(30);
    expect(all[0]!.frames).toEqual([]);
    expect(all[0]!.link.stats.framesIn).toBe(0);
    expect(all[0]!.link.stats.drops).toEqual({});
    // desktopd can answer at once: the handshake made the peer's address known.
    all[0]!.link.send(Buffer.from(arpA));
    await until(() => peer.received.length === 1, "a frame at the peer");
    await peer.send(listener.path, arpQ);
    await until(() => all[0]!.frames.length === 1, "the first frame");
    expect(all).toHaveLength(1);
    // Only the exact 4-byte datagram is a handshake; "VFKT" starting a longer datagram is a frame.
    const vfktFrame = Buffer.concat([Buffer.from("VFKT"), arpQ.subarray(4)]);
    await peer.send(listener.path, vfktFrame);
    await until(() => all[0]!.frames.length === 2, "the second frame");
    expect(all[0]!.frames[1]!.equals(vfktFrame)).toBe(true);
  });

  it("counts datagrams from an unbound sender on the listener, without a link", async () => {
    const { listener, all } = await listen(path("desktopd"));
    const nameless = await Peer.start(undefined);
    await nameless.send(listener.path, arpQ);
    await nameless.send(listener.path, pingQ);
    await until(() => listener.stats.drops["unaddressable-peer"] === 2, "the drops");
    expect(all).toEqual([]);
  });

  it("drops runts as truncated and datagrams beyond the largest frame as oversize", async () => {
    const { listener, all } = await listen(path("desktopd"));
    const peer = await Peer.start(path("vm"));
    const largest = Buffer.alloc(65_534, 0x33);
    arpQ.copy(largest, 0, 0, 14);
    await peer.send(listener.path, Buffer.alloc(0));
    await peer.send(listener.path, arpQ.subarray(0, 13));
    await peer.send(listener.path, Buffer.alloc(65_535));
    await peer.send(listener.path, Buffer.alloc(100_000));
    await peer.send(listener.path, arpQ.subarray(0, 14));
    await peer.send(listener.path, largest);
    await until(() => all[0]?.frames.length === 2, "the two good frames");
    const { link } = all[0]!;
    expect(link.stats.drops).toEqual({ truncated: 2, oversize: 2 });
    expect(all[0]!.frames.map((f) => f.length)).toEqual([14, 65_534]);
    expect(all[0]!.frames[1]!.equals(largest)).toBe(true);
  });

  it("honours a smaller maxFrame", async () => {
    const { listener, all } = await listen(path("desktopd"), { maxFrame: 1518 });
    const peer = await Peer.start(path("vm"));
    await peer.send(listener.path, Buffer.concat([arpQ, Buffer.alloc(1518 - arpQ.length)]));
    await peer.send(listener.path, Buffer.concat([arpQ, Buffer.alloc(1519 - arpQ.length)]));
    await peer.send(listener.path, Buffer.concat([arpQ, Buffer.alloc(9000 - arpQ.length)]));
    await peer.send(listener.path, udpQ);
    await until(() => all[0]?.frames.length === 2, "frames");
    expect(all[0]!.frames.map((f) => f.length)).toEqual([1518, udpQ.length]);
    expect(all[0]!.link.stats.drops).toEqual({ oversize: 2 });
  });

  it.each([
    ["removes its socket file", true],
    ["leaves its socket file behind", false],
  ])(
    "closes the link when the peer's VMM exits and %s; the same path coming back is a new link",
    async (_, unlink) => {
      const { listener, all } = await listen(path("desktopd"));
      const peerPath = path("vm");
      const first = await Peer.start(peerPath);
      await first.send(listener.path, arpQ);
      await until(() => all.length === 1 && all[0]!.frames.length === 1, "the first link");
      const old = all[0]!;
      await first.exit(unlink);
      expect(existsSync(peerPath)).toBe(!unlink);

      old.link.send(Buffer.from(arpA));
      await until(() => old.closed, "the link to close");
      expect(old.link.stats.drops["peer-gone"]).toBe(1);
      expect(old.closeError).toBeInstanceOf(Error);
      expect(old.closeError!.message).toMatch(unlink ? /ENOENT/ : /ECONNREFUSED/);
      old.link.send(Buffer.from(arpA));
      expect(old.link.stats.drops["link-down"]).toBe(1);

      // The VM restarts with the same socket path.
      if (!unlink) rmSync(peerPath);
      const second = await Peer.start(peerPath);
      await second.send(listener.path, udpQ);
      await until(() => all.length === 2 && all[1]!.frames.length === 1, "the new link");
      const fresh = all[1]!;
      expect(fresh.link).not.toBe(old.link);
      expect(fresh.link.name).toBe(old.link.name);
      expect(fresh.frames[0]!.equals(udpQ)).toBe(true);
      fresh.link.send(Buffer.from(udpA));
      await until(() => second.received.length === 1, "the reply on the new link");
      expect(second.received[0]!.data.equals(udpA)).toBe(true);
      expect(old.frames).toHaveLength(1);
    },
  );

  it("holds a bounded backlog for a peer that does not read, drops beyond it, and delivers the rest in order", async () => {
    const maxBacklog = 16;
    const { listener, all } = await listen(path("desktopd"), { maxBacklog });
    const peer = await Peer.start(path("vm"), false);
    await peer.send(listener.path, arpQ);
    await until(() => all.length === 1, "the link");
    const { link } = all[0]!;
    const total = 3000;
    for (let i = 0; i < total; i++) {
      const f = Buffer.alloc(1500);
      arpA.copy(f, 0, 0, 14);
      f.writeUInt32BE(i, 14);
      link.send(f);
    }
    await pause(50);
    // The peer's queue is full: what the kernel took is out, 16 wait, the rest were dropped.
    const dropped = link.stats.drops["queue-full"] ?? 0;
    expect(dropped).toBeGreaterThan(0);
    expect(link.stats.framesOut + maxBacklog + dropped).toBe(total);
    expect(all[0]!.closed).toBe(false);

    await peer.startReading();
    await until(() => peer.received.length === total - dropped, "every frame not dropped");
    expect(link.stats.framesOut).toBe(total - dropped);
    const ids = peer.received.map((r) => r.data.readUInt32BE(14));
    for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!);
    // The backlog was the frames right after the kernel's share.
    expect(ids.at(-1)).toBe(total - dropped - 1);
    link.send(Buffer.from(arpA));
    await until(() => peer.received.length === total - dropped + 1, "a frame after the burst");
    expect(link.stats.drops["queue-full"]).toBe(dropped);
  });

  it("sends frames given in parts, the parts free again on return, also when they wait in the backlog", async () => {
    const { listener, all } = await listen(path("desktopd"), { maxBacklog: 4096 });
    const peer = await Peer.start(path("vm"), false);
    await peer.send(listener.path, arpQ);
    await until(() => all.length === 1, "the link");
    const { link } = all[0]!;
    // More than the peer's queue holds while it does not read: the rest wait in the backlog.
    const total = 1200;
    const scratch = Buffer.alloc(1500);
    for (let i = 0; i < total; i++) {
      arpA.copy(scratch, 0, 0, 14);
      scratch.fill(i & 0xff, 14);
      scratch.writeUInt32BE(i, 14);
      const cut = 15 + (i % 7);
      link.sendv!([scratch.subarray(0, cut), scratch.subarray(cut, 700), scratch.subarray(700)]);
      scratch.fill(0xee);
    }
    expect(link.stats.drops).toEqual({});
    await peer.startReading();
    await until(() => peer.received.length === total, "every frame");
    peer.received.forEach((r, i) => {
      expect(r.data.length).toBe(1500);
      expect(r.data.readUInt32BE(14)).toBe(i);
      expect(r.data.subarray(18).every((b) => b === (i & 0xff))).toBe(true);
    });
    expect(link.stats.framesOut).toBe(total);
  });

  it("lends each datagram to a receiver that copies it, and gives any other one of its own", async () => {
    const at = path("desktopd");
    type Got = { kept: Buffer; copy: Buffer; lent: boolean };
    const got: Record<string, Got[]> = {};
    const listener = await listenUnixDatagram(at, (link) => {
      const frames: Got[] = [];
      const lending = link.name.includes("lending");
      got[lending ? "lending" : "keeping"] = frames;
      link.start({
        acceptsLent: lending,
        onFrame: (f, meta) => frames.push({ kept: f, copy: Buffer.from(f), lent: meta?.lent === true }),
      });
    });
    cleanups.push(() => listener.close());
    const [lender, keeper] = await Promise.all([Peer.start(path("lending")), Peer.start(path("keeping"))]);
    const sent = [arpQ, pingQ, udpQ];
    for (const f of sent) await lender.send(at, f);
    for (const f of sent) await keeper.send(at, f);
    await until(() => got.lending?.length === 3 && got.keeping?.length === 3, "three frames on each link");
    const hex = (frames: Buffer[]) => frames.map((f) => f.toString("hex"));
    // Right while lent; the memory is the next datagram's afterwards.
    expect(hex(got.lending!.map((g) => g.copy))).toEqual(hex(sent));
    expect(got.lending!.every((g) => g.lent)).toBe(true);
    expect(hex(got.lending!.map((g) => g.kept))).not.toEqual(hex(sent));
    // Kept as given, and still right after every later datagram.
    expect(hex(got.keeping!.map((g) => g.kept))).toEqual(hex(sent));
    expect(got.keeping!.some((g) => g.lent)).toBe(false);
  });

  it("removes its socket file on close and closes its links", async () => {
    const { listener, all } = await listen(path("desktopd"));
    const peer = await Peer.start(path("vm"));
    await peer.send(listener.path, arpQ);
    await until(() => all.length === 1, "the link");
    await listener.close();
    expect(existsSync(listener.path)).toBe(false);
    expect(all[0]!.closed).toBe(true);
    all[0]!.link.send(Buffer.from(arpA));
    expect(all[0]!.link.stats.drops["link-down"]).toBe(1);
    await expect(peer.send(listener.path, arpQ)).rejects.toThrow(/errno 2\b/); // ENOENT
  });
});

describe("listenUnixDatagram on a path already there", { timeout: 30_000 }, () => {
  it("replaces a stale socket file nobody is bound to", async () => {
    const at = path("desktopd");
    const dead = await Peer.start(at);
    await dead.exit(false);
    expect(statSync(at).isSocket()).toBe(true);
    const { listener, all } = await listen(at);
    const peer = await Peer.start(path("vm"));
    await peer.send(listener.path, arpQ);
    await until(() => all[0]?.frames.length === 1, "a frame");
  });

  it("refuses a live socket at the path and leaves it working", async () => {
    const at = path("desktopd");
    const owner = await Peer.start(at);
    await expect(listenUnixDatagram(at, () => {})).rejects.toBeInstanceOf(TransportError);
    await expect(listenUnixDatagram(at, () => {})).rejects.toThrow(/in use/);
    const peer = await Peer.start(path("vm"));
    await peer.send(at, arpQ);
    await until(() => owner.received.some((r) => r.data.equals(arpQ)), "the owner to get the frame");
    expect(statSync(at).isSocket()).toBe(true);
  });

  it("refuses a live socket that is not reading either", async () => {
    const at = path("desktopd");
    const owner = await Peer.start(path("owner"), false);
    await owner.bindSilent(at);
    await expect(listenUnixDatagram(at, () => {})).rejects.toThrow(/in use/);
    expect(statSync(at).isSocket()).toBe(true);
  });

  it("refuses a path that is not a socket, and leaves the file alone", async () => {
    const at = join(dir, "disk.img");
    writeFileSync(at, "precious");
    await expect(listenUnixDatagram(at, () => {})).rejects.toBeInstanceOf(TransportError);
    expect(readFileSync(at, "utf8")).toBe("precious");
  });

  it("with replaceStale: false refuses any existing file", async () => {
    const at = path("desktopd");
    const dead = await Peer.start(at);
    await dead.exit(false);
    await expect(listenUnixDatagram(at, () => {}, { replaceStale: false })).rejects.toThrow(/already exists/);
    expect(existsSync(at)).toBe(true);
  });
});

describe("listenUnixDatagram hardening", { timeout: 30_000 }, () => {
  it("makes its socket file the owner's only, whatever the umask", async () => {
    const { listener } = await listen(path("desktopd"));
    expect(statSync(listener.path).mode & 0o777).toBe(0o600);
  });

  it("bounds the links a flood of sender addresses can make, and counts the rest", async () => {
    const { listener, all } = await listen(path("desktopd"), { maxPeers: 2 });
    const peers = await Promise.all([1, 2, 3].map(() => Peer.start(path("vm"))));
    for (const p of peers) await p.send(listener.path, arpQ);
    await until(() => (listener.stats.drops["too-many-peers"] ?? 0) === 1, "the third peer's drop");
    expect(all).toHaveLength(2);
    // A link that goes makes room for a new peer.
    await all[0]!.link.close();
    await peers[2]!.send(listener.path, arpQ);
    await until(() => all.length === 3, "the third peer's link");
  });

  it("leaves a file that replaced its socket alone on close", async () => {
    const at = path("desktopd");
    const listener = await listenUnixDatagram(at, () => {});
    rmSync(at);
    writeFileSync(at, "someone else's");
    await listener.close();
    expect(readFileSync(at, "utf8")).toBe("someone else's");
  });

  it("refuses a symlink at the path, even to a stale socket", async () => {
    const stale = path("stale");
    const dead = await Peer.start(stale);
    await dead.exit(false);
    const at = path("link");
    symlinkSync(stale, at);
    await expect(listenUnixDatagram(at, () => {})).rejects.toThrow(/not a socket/);
    expect(lstatSync(at).isSymbolicLink()).toBe(true);
  });
});

describe("UnixDgramSocket", { timeout: 30_000 }, () => {
  it("close() returns at once but keeps the fd while a blocked batch send still names it", async () => {
    const a = await UnixDgramSocket.bind(path("a"));
    const b = await UnixDgramSocket.bind(path("b"));
    cleanups.push(() => b.close());
    // b never reads: fill its queue, then a batch send waits on a worker for room.
    while (a.sendTo(arpQ, b.path) === undefined) {}
    const sending = a.batchSender(b.path).send([arpQ]);
    const fdLink = `/proc/self/fd/${a.fd}`;
    const socketInode = readlinkSync(fdLink);
    await a.close();
    expect(readlinkSync(fdLink)).toBe(socketInode);
    expect(await sending).toBe(0);
    expect(existsSync(fdLink) ? readlinkSync(fdLink) : "closed").not.toBe(socketInode);
  });
});

describe("unixDatagramQueueLimit", () => {
  it("reads net.unix.max_dgram_qlen, and says nothing where it cannot", () => {
    const dir = mkdtempSync(join(tmpdir(), "dtd-qlen-"));
    try {
      writeFileSync(join(dir, "qlen"), "10\n");
      expect(unixDatagramQueueLimit(join(dir, "qlen"))).toBe(10);
      writeFileSync(join(dir, "junk"), "many\n");
      expect(unixDatagramQueueLimit(join(dir, "junk"))).toBeUndefined();
      expect(unixDatagramQueueLimit(join(dir, "missing"))).toBeUndefined();
      writeFileSync(join(dir, "empty"), "");
      expect(unixDatagramQueueLimit(join(dir, "empty"))).toBeUndefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
