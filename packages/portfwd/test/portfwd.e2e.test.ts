/**
 * Publishing ports of a real Linux guest (a network namespace behind a TAP and the userspace
 * stack): host clients → forwarder → stack.connect/dialUdp → guest servers.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { haveRootAndNetns, type StackGuest, startStackGuest, waitForListener } from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createForwarder, type Forwarder, PortInUseError } from "../src/index.js";
import { foreignListener, outcome, roundTrip, udpAsk } from "./support.js";

const env = haveRootAndNetns();
const run = promisify(execFile);
const CONCURRENT = 1000;

/**
 * Node servers in the guest: TCP echo (7000), TCP reset-on-data (7002), UDP echo (7001), a TCP
 * server that half-closes first (7004) and its byte count (7005).
 */
const GUEST_SERVERS = `
const net = require("net"), dgram = require("dgram");
const echo = net.createServer({ allowHalfOpen: true }, (s) => { s.on("error", () => {}); s.pipe(s); });
echo.listen({ port: 7000, backlog: 4096 });
const rst = net.createServer((s) => s.once("data", () => s.resetAndDestroy()));
rst.listen(7002);
const u = dgram.createSocket("udp4");
u.on("message", (m, r) => u.send(Buffer.concat([Buffer.from(r.address + ":" + r.port + ":"), m]), r.port, r.address));
u.bind(7001);
// Ends its side first, then keeps reading; 7005 tells how many bytes the last one read.
let lastRead = -1;
net.createServer({ allowHalfOpen: true }, (s) => {
  let n = 0;
  s.on("data", (b) => { n += b.length; });
  s.on("end", () => { lastRead = n; });
  s.end("guest done writing");
}).listen(7004);
net.createServer((s) => s.end(String(lastRead))).listen(7005);
`;

describe.skipIf(!env.ok)("publishing guest ports", () => {
  let guest: StackGuest;
  let fwd: Forwarder;
  let guestIp: string;
  let webRoot: string;

  beforeAll(async () => {
    // 1000 concurrent connections fit the default TCP table (16384), their TIME-WAITs the 4096 records.
    guest = await startStackGuest({ prefix: "pfwd" });
    guestIp = guest.stack.config.firstLease;
    fwd = createForwarder({ dialer: guest.stack, target: () => guestIp });
    guest.ns.spawn(process.execPath, ["-e", GUEST_SERVERS]);
    // The guest's own source answers: the address forwarded connections come from.
    guest.ns.spawn("socat", ["TCP-LISTEN:7003,reuseaddr,fork", "SYSTEM:echo $SOCAT_PEERADDR"]);
    webRoot = await mkdtemp(join(tmpdir(), "dtd-pfwd-"));
    await writeFile(join(webRoot, "index.txt"), "hello from the guest\n");
    guest.ns.spawn("python3", ["-m", "http.server", "--bind", "0.0.0.0", "--directory", webRoot, "8000"], {
      stdio: "ignore",
    });
    await Promise.all([
      waitForListener(guest.ns, "t", 7000),
      waitForListener(guest.ns, "u", 7001),
      waitForListener(guest.ns, "t", 7002),
      waitForListener(guest.ns, "t", 7003),
      waitForListener(guest.ns, "t", 7005),
      waitForListener(guest.ns, "t", 8000),
    ]);
  });

  afterAll(async () => {
    await fwd?.close();
    await guest?.close();
    if (webRoot) await rm(webRoot, { recursive: true, force: true });
  });

  it("host curl reaches the guest's HTTP server through a published port", async () => {
    const [info] = await fwd.add("0:8000");
    const url = `http://127.0.0.1:${info!.hostPort}/index.txt`;
    const { stdout } = await run("curl", ["-sS", "--fail", "--max-time", "20", url]);
    expect(stdout).toBe("hello from the guest\n");
    expect(fwd.list().find((f) => f.id === info!.id)!.stats.bytesOut).toBeGreaterThan(stdout.length);
    await fwd.remove(info!.id);
  });

  it("the guest sees forwarded connections from the stack's host address", async () => {
    const [info] = await fwd.add("0:7003");
    const answer = (await roundTrip(info!.hostPort, Buffer.alloc(0))).toString().trim();
    expect(answer).toBe(guest.stack.config.hostAddress);
    await fwd.remove(info!.id);
  });

  it("echoes UDP, one flow per host client", async () => {
    const [info] = await fwd.add("0:7001/udp");
    const a = (await udpAsk(info!.hostPort, "ping a")).split(":");
    const b = (await udpAsk(info!.hostPort, "ping b")).split(":");
    // The guest sees the host address, each client behind its own source port.
    expect([a[0], a[2]]).toEqual([guest.stack.config.hostAddress, "ping a"]);
    expect([b[0], b[2]]).toEqual([guest.stack.config.hostAddress, "ping b"]);
    expect(a[1]).not.toBe(b[1]);
    expect(fwd.list().find((f) => f.id === info!.id)!.stats).toMatchObject({ accepted: 2, open: 2 });
    await fwd.remove(info!.id);
  });

  it(`carries ${CONCURRENT} concurrent connections, each with its own bytes`, async () => {
    const [info] = await fwd.add("0:7000");
    const sockets = await Promise.all(
      Array.from({ length: CONCURRENT }, async () => {
        const s = net.connect({ port: info!.hostPort, host: "127.0.0.1", allowHalfOpen: true });
        await once(s, "connect");
        return s;
      }),
    );
    // Every connection is through to the guest before any byte is sent.
    for (let i = 0; i < 200 && fwd.list().find((f) => f.id === info!.id)!.stats.open < CONCURRENT; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(fwd.list().find((f) => f.id === info!.id)!.stats.open).toBe(CONCURRENT);
    const results = await Promise.all(
      sockets.map(async (s) => {
        const data = randomBytes(2048);
        const chunks: Buffer[] = [];
        s.on("data", (b: Buffer) => chunks.push(b));
        s.end(data);
        await once(s, "end");
        s.destroy();
        return Buffer.concat(chunks).equals(data);
      }),
    );
    expect(results.filter((ok) => !ok)).toHaveLength(0);
    const stats = fwd.list().find((f) => f.id === info!.id)!.stats;
    expect(stats).toMatchObject({ accepted: CONCURRENT, dialFailures: 0 });
    expect(stats.bytesIn).toBe(CONCURRENT * 2048);
    await fwd.remove(info!.id);
  }, 120_000);

  it("a host port already taken fails that publish alone, naming its holder", async () => {
    const { child, port } = await foreignListener("tcp");
    try {
      const [other] = await fwd.add("0:7000");
      const error = await fwd.add(`${port}:7000`).catch((e: unknown) => e);
      expect(PortInUseError.isInstance(error)).toBe(true);
      expect((error as Error).message).toContain(
        `127.0.0.1:${port} is already in use: held by node (pid ${child.pid}`,
      );
      // The other forward is untouched.
      expect((await roundTrip(other!.hostPort, Buffer.from("still works"))).toString()).toBe("still works");
      await fwd.remove(other!.id);
    } finally {
      child.kill();
    }
  });

  it("a guest port with nothing listening resets the host client", async () => {
    const [info] = await fwd.add("0:7999");
    const started = Date.now();
    const c = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
    expect(await outcome(c)).toBe("ECONNRESET");
    expect(Date.now() - started).toBeLessThan(5000);
    expect(fwd.list().find((f) => f.id === info!.id)!.stats.dialFailures).toBe(1);
    await fwd.remove(info!.id);
  });

  it("half-closes from the guest: its end arrives, and the host's upload still reaches it", async () => {
    const [info] = await fwd.add("0:7004");
    const c = net.connect({ port: info!.hostPort, host: "127.0.0.1", allowHalfOpen: true });
    const got: Buffer[] = [];
    c.on("data", (b: Buffer) => got.push(b));
    await once(c, "end");
    expect(Buffer.concat(got).toString()).toBe("guest done writing");
    const upload = randomBytes(1 << 20);
    c.end(upload);
    await once(c, "close");
    const [count] = await fwd.add("0:7005");
    // The guest saw our FIN only after every byte: poll its count until the server has it.
    let read = "";
    for (let i = 0; i < 50 && read !== String(upload.length); i++) {
      read = (await roundTrip(count!.hostPort, Buffer.alloc(0))).toString();
      if (read !== String(upload.length)) await new Promise((r) => setTimeout(r, 100));
    }
    expect(read).toBe(String(upload.length));
    await fwd.remove(info!.id);
    await fwd.remove(count!.id);
  });

  it("a guest reset reaches the host client as a reset", async () => {
    const [info] = await fwd.add("0:7002");
    const c = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
    await once(c, "connect");
    c.write("trigger");
    expect(await outcome(c)).toBe("ECONNRESET");
    await fwd.remove(info!.id);
  });

  it("remove while connections are open: they live on, or are reset when asked", async () => {
    const [info] = await fwd.add("0:7000");
    const open = async () => {
      const s = net.connect({ port: info!.hostPort, host: "127.0.0.1" });
      await once(s, "connect");
      s.write("hi");
      await once(s, "data");
      return s;
    };
    const kept = await open();
    await fwd.remove(info!.id);
    expect(await outcome(net.connect({ port: info!.hostPort, host: "127.0.0.1" }))).toBe("ECONNREFUSED");
    kept.write("after remove");
    const [again] = (await once(kept, "data")) as [Buffer];
    expect(again.toString()).toBe("after remove");
    kept.destroy();

    const [info2] = await fwd.add(`${info!.hostPort}:7000`);
    const doomed = await open();
    const result = outcome(doomed);
    const closed = new Promise((r) => fwd.on("connection-closed", r));
    await fwd.remove(info2!.id, { closeConnections: true });
    expect(await result).toBe("ECONNRESET");
    await closed;
  });
});
