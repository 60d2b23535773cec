/**
 * `splice` over real loopback sockets: a plain TCP remote moves under a socket whose reads land in
 * a shared buffer and reach the client as copies in a recycled pool. A download held back by its
 * client must keep its bytes while another one moves through the same pool.
 */
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import type { Duplex } from "node:stream";
import { SlabPool } from "@desktopd/core";
import { afterEach, describe, expect, it } from "vitest";
import { splice } from "../src/tunnel.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

/** A server that sends `data` to each connection and ends; the far side of a tunnel. */
async function source(data: Buffer): Promise<number> {
  const server = net.createServer((s) => {
    s.on("error", () => {});
    s.end(data);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanups.push(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

/** A connected socket pair on loopback: `near` stands for the proxy's client, `user` is its peer. */
async function clientPair(): Promise<{ near: net.Socket; user: net.Socket }> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "connection");
  const user = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  const [near] = (await accepted) as [net.Socket];
  await once(user, "connect");
  server.close();
  cleanups.push(() => {
    near.destroy();
    user.destroy();
  });
  return { near, user };
}

async function remoteTo(port: number): Promise<net.Socket> {
  const remote = net.connect(port, "127.0.0.1");
  remote.pause();
  cleanups.push(() => remote.destroy());
  await once(remote, "connect");
  return remote;
}

function sha(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Everything `user` reads until the end, hashed. */
function received(user: net.Socket): Promise<{ bytes: number; hash: string }> {
  const digest = createHash("sha256");
  let bytes = 0;
  user.on("data", (b: Buffer) => {
    digest.update(b);
    bytes += b.length;
  });
  return once(user, "end").then(() => ({ bytes, hash: digest.digest("hex") }));
}

describe("splice with a pool", () => {
  it("moves a plain TCP remote and relays its bytes intact, one download held while another runs", async () => {
    const pool = new SlabPool({ maxSlabs: 8, maxFree: 2 });
    const open = new Set<Duplex>();
    const slowData = randomBytes(12 << 20);
    const fastData = randomBytes(12 << 20);

    const slow = await clientPair();
    slow.user.pause(); // its reads wait: the kernel fills, the client's writes hold pool copies
    const slowRemote = await remoteTo(await source(slowData));
    splice(slow.near, slowRemote, open, pool);
    expect(open.has(slowRemote)).toBe(false); // the socket that moved is tracked in its place
    expect(open.size).toBe(1);
    await new Promise((r) => setTimeout(r, 200));

    const fast = await clientPair();
    const fastDone = received(fast.user);
    splice(fast.near, await remoteTo(await source(fastData)), open, pool);
    expect(await fastDone).toEqual({ bytes: fastData.length, hash: sha(fastData) });

    const slowDone = received(slow.user);
    slow.user.resume();
    expect(await slowDone).toEqual({ bytes: slowData.length, hash: sha(slowData) });
    expect(pool.stats.slabsReused + pool.stats.slabsAllocated).toBeGreaterThan(0);
  });

  it("pipes a remote it cannot move (bytes already waiting in its buffer)", async () => {
    const pool = new SlabPool();
    const open = new Set<Duplex>();
    const { near, user } = await clientPair();
    const remote = await remoteTo(await source(Buffer.from("from the far side")));
    remote.unshift(Buffer.from("early "));
    const done = received(user);
    let text = "";
    user.on("data", (b: Buffer) => {
      text += b.toString();
    });
    splice(near, remote, open, pool);
    expect(open.has(remote)).toBe(true);
    await done;
    expect(text).toBe("early from the far side");
    expect(pool.stats.slabsAllocated).toBe(0);
  });
});
