/**
 * The forwarder over plain loopback sockets (createSocketDialer): everything except the guest.
 * The same behaviours through a real guest are in portfwd.e2e.test.ts.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import dgram from "node:dgram";
import { once } from "node:events";
import { readdirSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { fileURLToPath } from "node:url";
import { ManualClock } from "@desktopd/core";
import { afterEach, describe, expect, it } from "vitest";
import {
  createForwarder,
  createSocketDialer,
  ForwardConflictError,
  type Forwarder,
  ForwardNotFoundError,
  PortfwdOptionError,
  PortInUseError,
  SpecError,
  TargetUnavailableError,
} from "../src/index.js";
import {
  closedPort,
  echo,
  foreignListener,
  outcome,
  roundTrip,
  tcpServer,
  udpAsk,
  udpEcho,
} from "./support.js";

const cleanups: (() => unknown)[] = [];

const openFds = () => readdirSync("/proc/self/fd").length;

function haveIpv6Loopback(): boolean {
  return os.networkInterfaces().lo?.some((a) => a.address === "::1") === true;
}
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function forwarder(options: Partial<Parameters<typeof createForwarder>[0]> = {}): Forwarder {
  const f = createForwarder({ dialer: createSocketDialer(), target: "127.0.0.1", ...options });
  cleanups.push(() => f.close());
  return f;
}

async function server(onSocket: (s: net.Socket) => void) {
  const s = await tcpServer(onSocket);
  cleanups.push(() => s.close());
  return s;
}

/** Waits until the forward's first entry stops taking bytes (kernel buffers full); its bytesIn. */
async function heldBytes(f: Forwarder, stepMs: number): Promise<number> {
  let last = -1;
  for (let i = 0; i < 50; i++) {
    await new Promise((r) => setTimeout(r, stepMs));
    const now = f.list()[0]!.stats.bytesIn;
    if (now === last && now > 0) break;
    last = now;
  }
  return f.list()[0]!.stats.bytesIn;
}

/** Resumes `socket` and resolves with how much it read and its sha256 once `total` bytes came. */
function drained(socket: net.Socket, total: number): Promise<{ received: number; hex: string }> {
  const digest = createHash("sha256");
  let received = 0;
  const all = new Promise<{ received: number; hex: string }>((resolve) => {
    socket.on("data", (b: Buffer) => {
      received += b.length;
      digest.update(b);
      if (received === total) resolve({ received, hex: digest.digest("hex") });
    });
  });
  socket.resume();
  return all;
}

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

describe("TCP forwarding", () => {
  it("carries bytes both ways and reports live stats and events", async () => {
    const target = await server(echo);
    const f = forwarder();
    const events: string[] = [];
    f.on("connection", ({ id }) => events.push(`connection ${id}`));
    f.on("connection-closed", ({ bytesIn, bytesOut }) => events.push(`closed ${bytesIn}/${bytesOut}`));
    const [info] = await f.add(`0:${target.port}`);
    expect(info).toMatchObject({ protocol: "tcp", hostIp: "127.0.0.1", targetPort: target.port });
    expect(info!.hostPort).toBeGreaterThan(0);
    expect(info!.id).toBe(`tcp/127.0.0.1:${info!.hostPort}`);

    const data = randomBytes(1 << 20);
    const back = await roundTrip(info!.hostPort, data);
    expect(back.equals(data)).toBe(true);
    await new Promise((r) => setImmediate(r));
    expect(f.list()[0]!.stats).toMatchObject({
      open: 0,
      accepted: 1,
      bytesIn: data.length,
      bytesOut: data.length,
    });
    expect(events).toEqual([`connection ${info!.id}`, `closed ${data.length}/${data.length}`]);
  });

  it("half-closes: the target still answers after the client ends its side, and vice versa", async () => {
    // Reads the whole request, then answers, then ends.
    const target = await server((s) => {
      const chunks: Buffer[] = [];
      s.on("data", (b) => chunks.push(b));
      s.on("end", () => s.end(`got ${Buffer.concat(chunks).length} bytes`));
    });
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}`);
    expect((await roundTrip(info!.hostPort, Buffer.alloc(100_000))).toString()).toBe("got 100000 bytes");

    // The target ends first; the client keeps writing and the target keeps reading.
    const early = await server((s) => {
      let n = 0;
      s.on("data", (b) => {
        n += b.length;
      });
      s.write("hello, then I end my side");
      s.end();
      s.on("end", () => early.close());
      s.on("end", () => resolveReceived(n));
    });
    let resolveReceived: (n: number) => void = () => {};
    const received = new Promise<number>((r) => {
      resolveReceived = r;
    });
    const [info2] = await f.add(`0:${early.port}`);
    const c = net.connect({ port: info2!.hostPort, host: "127.0.0.1", allowHalfOpen: true });
    const got: Buffer[] = [];
    c.on("data", (b) => got.push(b));
    await once(c, "end");
    expect(Buffer.concat(got).toString()).toBe("hello, then I end my side");
    c.end(Buffer.alloc(50_000));
    expect(await received).toBe(50_000);
    c.destroy();
  });

  it("resets the client when the target refuses, and counts it", async () => {
    const port = await closedPort();
    const f = forwarder();
    const failed = new Promise((r) => f.on("dial-failed", r));
    const [info] = await f.add(`0:${port}`);
    const c = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
    expect(await outcome(c)).toBe("ECONNRESET");
    await failed;
    expect(f.list()[0]!.stats).toMatchObject({ dialFailures: 1, open: 0 });
  });

  it("resets the client when the target resets", async () => {
    const target = await server((s) => s.once("data", () => s.resetAndDestroy()));
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}`);
    const c = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
    await once(c, "connect");
    c.write("x");
    expect(await outcome(c)).toBe("ECONNRESET");
  });

  it("resets the target when the client resets", async () => {
    let targetSide: Promise<string> | undefined;
    const target = await server((s) => {
      targetSide = outcome(s);
      s.once("data", () => s.write("ready"));
    });
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}`);
    const c = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
    c.write("x");
    await once(c, "data");
    c.resetAndDestroy();
    expect(await targetSide).toBe("ECONNRESET");
  });

  it("cuts idle connections only when configured", async () => {
    const target = await server(echo);
    const cutting = forwarder({ tcpIdleTimeoutMs: 200 });
    const keeping = forwarder();
    const [cut] = await cutting.add(`0:${target.port}`);
    const [kept] = await keeping.add(`0:${target.port}`);
    const idle = net.connect({ port: kept!.hostPort, host: "127.0.0.1" });
    cleanups.push(() => idle.destroy());
    await once(idle, "connect");
    const c = net.connect({ port: cut!.hostPort, host: "127.0.0.1" });
    const result = outcome(c);
    const closed = new Promise((r) => cutting.on("connection-closed", r));
    await once(c, "connect");
    await closed;
    expect(["ended", "closed"]).toContain(await result);
    // The default forwarder's connection, idle as long, still carries bytes.
    idle.write("still here");
    const [answer] = (await once(idle, "data")) as [Buffer];
    expect(answer.toString()).toBe("still here");
    expect(keeping.list()[0]!.stats.open).toBe(1);
  });

  it("reads from the client only as fast as the target takes (backpressure)", async () => {
    let targetSocket: net.Socket | undefined;
    const target = await server((s) => {
      targetSocket = s;
      s.pause();
    });
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}`);
    const c = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
    cleanups.push(() => c.destroy());
    await once(c, "connect");
    const queued = 64 << 20;
    // Random bytes: the forwarder's read memory is recycled while the target holds writes back,
    // and a copy given back too early would show as different bytes at the end.
    const sent = randomBytes(queued);
    c.write(sent);
    // Wait until the forwarder stops taking bytes: kernel buffers fill, then nothing moves.
    const held = await heldBytes(f, 100);
    expect(held).toBeGreaterThan(0);
    // Socket buffers on both sides hold a few MiB; without backpressure all 64 MiB would flow in.
    expect(held).toBeLessThan(queued / 3);
    // Once the target reads, everything arrives.
    const { received, hex } = await drained(targetSocket!, queued);
    expect(received).toBe(queued);
    expect(hex).toBe(sha256(sent));
  });

  it("a connection its target holds back keeps its bytes while other connections move theirs", async () => {
    const held: net.Socket[] = [];
    const target = await server((s) => {
      if (held.length === 0) {
        held.push(s);
        s.pause();
      } else echo(s);
    });
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}`);
    const c = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
    cleanups.push(() => c.destroy());
    await once(c, "connect");
    const slow = randomBytes(16 << 20);
    c.write(slow);
    await heldBytes(f, 50);
    // The held connection's last read waits in the forwarder's memory; this one's reads pass it.
    const fast = randomBytes(8 << 20);
    expect((await roundTrip(info!.hostPort, fast)).equals(fast)).toBe(true);
    expect((await drained(held[0]!, slow.length)).hex).toBe(sha256(slow));
  });

  it("remove closes the listener; open connections live on unless asked to close", async () => {
    const target = await server(echo);
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}`);
    const port = info!.hostPort;
    const keep = net.connect({ port, host: "127.0.0.1" });
    await once(keep, "connect");
    keep.write("ping");
    await once(keep, "data");

    const removed = await f.remove(info!.id);
    expect(removed.map((r) => r.id)).toEqual([info!.id]);
    expect(f.list()).toEqual([]);
    expect(await outcome(net.connect({ port, host: "127.0.0.1" }))).toBe("ECONNREFUSED");
    keep.write("still there");
    const [answer] = (await once(keep, "data")) as [Buffer];
    expect(answer.toString()).toBe("still there");
    keep.destroy();

    const [again] = await f.add(`${port}:${target.port}`);
    const c = net.connect({ port, host: "127.0.0.1" });
    await once(c, "connect");
    c.write("x");
    await once(c, "data");
    const result = outcome(c);
    await f.remove(`${port}:${target.port}`, { closeConnections: true });
    expect(await result).toBe("ECONNRESET");
    expect(again!.id).toBe(info!.id);
    await expect(f.remove(info!.id)).rejects.toSatisfy(ForwardNotFoundError.isInstance);
  });
  it("closes a connection whose target has already ended (no reset possible after our FIN)", async () => {
    // An HTTP/1.0 answer, then the target's end: fetch resolves, its body unread.
    const target = await server((s) => {
      s.on("error", () => {});
      s.once("data", () => s.end(`HTTP/1.0 200 OK\r\n\r\n${"x".repeat(5000)}`));
    });
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}`);
    const closed = new Promise((r) => f.on("connection-closed", r));
    const res = await fetch(`http://127.0.0.1:${info!.hostPort}/`);
    expect(res.status).toBe(200);
    await f.remove(info!.id, { closeConnections: true });
    await closed;
    expect(f.list()).toEqual([]);
  });

  it("close() also ends connections of forwards removed without closing them", async () => {
    const target = await server(echo);
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}`);
    const kept = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
    await once(kept, "connect");
    kept.write("ping");
    await once(kept, "data");
    await f.remove(info!.id);
    const result = outcome(kept);
    await f.close();
    expect(await result).toBe("ECONNRESET");
  });

  it("a target function that throws resets the client instead of crashing", async () => {
    const f = forwarder({
      target: () => {
        throw new Error("no lease table");
      },
    });
    const [info] = await f.add("0:80");
    const failed = new Promise((r) => f.on("dial-failed", r));
    expect(await outcome(net.connect({ port: info!.hostPort, host: "127.0.0.1" }))).toBe("ECONNRESET");
    await failed;
    expect(f.list()[0]).toMatchObject({ targetIp: undefined, stats: { dialFailures: 1 } });
  });

  it("the added event carries the target address", async () => {
    const f = forwarder();
    const added = new Promise<unknown>((r) => f.on("added", ({ info }) => r(info)));
    await f.add("0:80");
    expect(await added).toMatchObject({ targetIp: "127.0.0.1", targetPort: 80 });
    expect(await added).not.toHaveProperty("stats");
  });
});

describe("options", () => {
  it.each([
    [{ udpMaxFlows: Number.NaN }, "udpMaxFlows must be an integer ≥ 1, not NaN"],
    [{ udpIdleTimeoutMs: -1 }, "udpIdleTimeoutMs must be an integer ≥ 1, not -1"],
    [{ tcpIdleTimeoutMs: 0.5 }, "tcpIdleTimeoutMs must be an integer ≥ 1, not 0.5"],
    [{ defaultHostIp: "localhost" }, 'defaultHostIp must be an IP address, not "localhost"'],
  ])("rejects %j", (bad, message) => {
    let error: unknown;
    try {
      createForwarder({ dialer: createSocketDialer(), ...bad });
    } catch (e) {
      error = e;
    }
    expect(PortfwdOptionError.isInstance(error)).toBe(true);
    expect((error as Error).message).toBe(message);
  });

  it("refuses UDP specs when the dialer has no UDP", async () => {
    const { connect } = createSocketDialer();
    const f = forwarder({ dialer: { connect } });
    await expect(f.add("0:53/udp")).rejects.toSatisfy(TargetUnavailableError.isInstance);
    expect(f.list()).toEqual([]);
  });
});

describe.skipIf(!haveIpv6Loopback())("IPv6 host addresses", () => {
  it("listens on [::1] and names an IPv6 holder", async () => {
    const target = await server(echo);
    const f = forwarder();
    const [info] = await f.add(`[::1]::${target.port}`);
    expect(info!.id).toBe(`tcp/[::1]:${info!.hostPort}`);
    expect((await roundTrip(info!.hostPort, Buffer.from("v6"), "::1")).toString()).toBe("v6");
    const error = await forwarder()
      .add(`[::1]:${info!.hostPort}:${target.port}`)
      .catch((e: unknown) => e);
    expect(PortInUseError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain(`tcp [::1]:${info!.hostPort} is already in use: held by`);
    expect((error as PortInUseError).holder).toMatchObject({
      pid: process.pid,
      localAddress: `[::1]:${info!.hostPort}`,
    });
  });
});

describe("conflicts", () => {
  it("a port held by another process fails that publish alone, naming the process", async () => {
    const target = await server(echo);
    const { child, port } = await foreignListener("tcp");
    cleanups.push(() => child.kill());
    const f = forwarder();
    const error = await f.add(`${port}:${target.port}`).catch((e: unknown) => e);
    expect(PortInUseError.isInstance(error)).toBe(true);
    const e = error as PortInUseError;
    expect(e.holder).toMatchObject({ pid: child.pid, command: "node", localAddress: `127.0.0.1:${port}` });
    expect(e.message).toBe(
      `tcp 127.0.0.1:${port} is already in use: held by node (pid ${child.pid} on 127.0.0.1:${port})`,
    );
    // Nothing of the failed publish remains, and the next one works.
    expect(f.list()).toEqual([]);
    const [ok] = await f.add(`0:${target.port}`);
    expect((await roundTrip(ok!.hostPort, Buffer.from("hi"))).toString()).toBe("hi");
  });

  it("a UDP port held by another process names it too", async () => {
    const { child, port } = await foreignListener("udp");
    cleanups.push(() => child.kill());
    const error = await forwarder()
      .add(`${port}:53/udp`)
      .catch((e: unknown) => e);
    expect(PortInUseError.isInstance(error)).toBe(true);
    expect((error as PortInUseError).holder?.pid).toBe(child.pid);
    expect((error as Error).message).toContain(`udp 127.0.0.1:${port} is already in use: held by node`);
  });

  it("a UDP publish that cannot bind leaves no socket open", async () => {
    const held = dgram.createSocket("udp4");
    cleanups.push(() => held.close());
    await new Promise<void>((r) => held.bind(0, "127.0.0.1", r));
    const f = forwarder();
    const before = openFds();
    for (let i = 0; i < 20; i++) {
      await expect(f.add(`${held.address().port}:53/udp`)).rejects.toSatisfy(PortInUseError.isInstance);
    }
    // dgram keeps a socket whose bind failed open: 20 would leak without the close.
    expect(openFds() - before).toBeLessThan(5);
  });

  it("a range with one port taken opens none of its ports", async () => {
    const { child, port } = await foreignListener("tcp");
    cleanups.push(() => child.kill());
    const f = forwarder();
    const error = await f.add(`${port - 2}-${port}:7000-7002`).catch((e: unknown) => e);
    expect(PortInUseError.isInstance(error)).toBe(true);
    expect(f.list()).toEqual([]);
    for (const p of [port - 2, port - 1]) {
      expect(await outcome(net.connect({ port: p, host: "127.0.0.1" }))).toBe("ECONNREFUSED");
    }
  });

  it("each host port maps to one target at a time, wildcards included", async () => {
    const f = forwarder();
    const [info] = await f.add("0:80");
    const port = info!.hostPort;
    for (const spec of [`${port}:81`, `0.0.0.0:${port}:81`]) {
      const error = await f.add(spec).catch((e: unknown) => e);
      expect(ForwardConflictError.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain(`already published (forward ${info!.id} → 127.0.0.1:80)`);
    }
    // Another protocol on the same port is another socket.
    await f.add(`${port}:81/udp`);
    expect(f.list()).toHaveLength(2);
  });

  it.skipIf(!haveIpv6Loopback())(
    "an IPv4 wildcard leaves IPv6 addresses free, as the kernel does; `::` covers both",
    async () => {
      const f = forwarder();
      const [v4] = await f.add("0.0.0.0:0:80");
      const port = v4!.hostPort;
      await f.add(`[::1]:${port}:81`);
      expect(f.list().map((i) => i.id)).toEqual([v4!.id, `tcp/[::1]:${port}`]);
      const error = await f.add(`[::]:${port}:82`).catch((e: unknown) => e);
      expect(ForwardConflictError.isInstance(error)).toBe(true);
    },
  );

  it("a malformed spec is rejected before anything is bound", async () => {
    const f = forwarder();
    for (const spec of ["8080:80/sctp", "x:80", "1.2.3:80:80", "9000-9001:80"]) {
      await expect(f.add(spec)).rejects.toSatisfy(SpecError.isInstance);
    }
    expect(f.list()).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)("a privileged port says how to allow it", async () => {
    // A child without CAP_NET_BIND_SERVICE: the bind fails as it would for an ordinary user. It
    // stays root otherwise, so it can read the checkout wherever it is (a 0700 home directory too).
    const dist = fileURLToPath(new URL("../dist/index.js", import.meta.url));
    const script = `import(${JSON.stringify(dist)}).then(async (m) => {
      const f = m.createForwarder({ dialer: m.createSocketDialer(), target: "127.0.0.1" });
      try { await f.add("80:80"); console.log("bound"); } catch (e) { console.log(e.code + " " + e.message); }
      await f.close();
    })`;
    const child = spawn("setpriv", ["--bounding-set", "-net_bind_service", process.execPath, "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b) => {
      out += b;
    });
    child.stderr.on("data", (b) => {
      out += b;
    });
    await once(child, "exit");
    expect(out).toContain(
      "ERR_DESKTOPD_PORTFWD_PRIVILEGED_PORT tcp 127.0.0.1:80: ports below 1024 need privileges",
    );
    expect(out).toContain("CAP_NET_BIND_SERVICE");
    expect(out).toContain("net.ipv4.ip_unprivileged_port_start=80");
  });
});

describe("UDP forwarding", () => {
  it("gives each client its own flow and sends answers back to it", async () => {
    const target = await udpEcho();
    cleanups.push(() => target.close());
    const f = forwarder();
    const [info] = await f.add(`0:${target.port}/udp`);
    expect(await udpAsk(info!.hostPort, "one")).toBe("echo:one");
    expect(await udpAsk(info!.hostPort, "two")).toBe("echo:two");
    // Two clients, two flows: the target saw two distinct sources.
    expect(target.senders.size).toBe(2);
    expect(f.list()[0]!.stats).toMatchObject({ accepted: 2, open: 2, bytesIn: 6, bytesOut: 16 });
  });

  it("closes idle flows", async () => {
    const target = await udpEcho();
    cleanups.push(() => target.close());
    const f = forwarder({ udpIdleTimeoutMs: 150 });
    const [info] = await f.add(`0:${target.port}/udp`);
    const closed = new Promise((r) => f.on("connection-closed", r));
    expect(await udpAsk(info!.hostPort, "x")).toBe("echo:x");
    await closed;
    expect(f.list()[0]!.stats.open).toBe(0);
  });

  it("keeps a flow for exactly its idle time on the injected clock", async () => {
    const target = await udpEcho();
    cleanups.push(() => target.close());
    const clock = new ManualClock();
    const f = forwarder({ udpIdleTimeoutMs: 60_000, clock });
    const [info] = await f.add(`0:${target.port}/udp`);
    expect(await udpAsk(info!.hostPort, "x")).toBe("echo:x");
    clock.advance(59_000);
    expect(f.list()[0]!.stats.open).toBe(1);
    clock.advance(11_000);
    expect(f.list()[0]!.stats.open).toBe(0);
  });

  it("counts datagrams of a flow whose target cannot be dialled", async () => {
    const f = forwarder({ target: () => undefined });
    const [info] = await f.add("0:9/udp");
    const failed = new Promise((r) => f.on("dial-failed", r));
    const sock = (await import("node:dgram")).createSocket("udp4");
    sock.send("x", info!.hostPort, "127.0.0.1");
    await failed;
    sock.close();
    // Not carried: dropped, and not counted as bytes in.
    expect(f.list()[0]!.stats).toMatchObject({ dialFailures: 1, open: 0, bytesIn: 0, dropped: 1 });
  });
});
