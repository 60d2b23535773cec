/**
 * Plain requests through an HTTP upstream proxy reuse kept-alive connections to it: a Node
 * forward proxy on loopback stands for the corporate one and counts the connections it accepts.
 * Kept connections that the upstream drops, a settings change and the pool's own bounds are
 * covered too.
 */
import http from "node:http";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { configFromEnv, createHttpProxy, type HttpProxy, ProxySettings } from "../src/index.js";
import { UpstreamPool } from "../src/upstream-pool.js";

const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        (server as http.Server).closeAllConnections?.();
        server.close(() => r());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

/** The origin: answers every request with its path. */
async function origin(): Promise<number> {
  return listen(http.createServer((req, res) => res.end(`hello ${req.url}`)));
}

/**
 * A forward proxy that keeps its clients' connections alive and counts them. `dropSecond`: it
 * destroys a connection when a second request arrives on it (an upstream that closed a kept
 * connection just as it was reused).
 */
async function upstreamProxy(
  o: { dropSecond?: boolean; stallSecond?: boolean; refuseBodies?: boolean } = {},
) {
  const stats = { connections: 0, requests: 0, closed: 0, methods: [] as string[] };
  const server = http.createServer({ keepAliveTimeout: 30_000 }, (req, res) => {
    stats.requests++;
    stats.methods.push(req.method ?? "");
    const socket = req.socket as net.Socket & { served?: number };
    socket.served = (socket.served ?? 0) + 1;
    if (o.dropSecond && socket.served === 2) {
      socket.destroy();
      return;
    }
    if (o.stallSecond && socket.served === 2) return;
    if (o.refuseBodies && req.headers["content-length"] !== undefined) {
      // At once, without reading the body, and keeping the connection (as a 403 or 413 may).
      res.writeHead(403, { "content-length": "0" });
      res.end();
      return;
    }
    const url = new URL(req.url ?? "");
    const forwarded = http.request(
      { host: url.hostname, port: url.port, path: url.pathname, method: req.method, agent: false },
      (up) => {
        res.writeHead(up.statusCode ?? 502, { "content-type": "text/plain" });
        up.pipe(res);
      },
    );
    forwarded.on("error", () => res.destroy());
    req.pipe(forwarded);
  });
  server.on("connection", (s: net.Socket) => {
    stats.connections++;
    s.on("close", () => stats.closed++);
  });
  const port = await listen(server);
  return { port, stats };
}

/** The proxy under test on a host port, with `upstream` as its HTTP proxy. */
async function proxyTo(upstreamPort: number, timeoutMs = 3000) {
  const settings = new ProxySettings(configFromEnv({ http_proxy: `http://127.0.0.1:${upstreamPort}` }));
  const proxy: HttpProxy = createHttpProxy({ settings, timeoutMs });
  closers.push(() => proxy.close());
  const port = await listen(net.createServer((s) => proxy.handle(s)));
  return { proxy, port, settings };
}

/** One request (GET by default) through the proxy on a new client connection; the answer's status and body. */
function get(proxyPort: number, url: string, method = "GET"): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port: proxyPort, path: url, method, agent: false },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

const settle = () => new Promise((r) => setTimeout(r, 20));

/** Waits for `cond` (at most 3 s): the sockets' events come when the kernel and the loop get to them. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 150 && !cond(); i++) await settle();
}

describe("kept-alive connections to an HTTP upstream proxy", () => {
  it("carries one client's requests after another over one upstream connection", async () => {
    const web = await origin();
    const up = await upstreamProxy();
    const { proxy, port } = await proxyTo(up.port);
    for (let i = 0; i < 6; i++) {
      const answer = await get(port, `http://127.0.0.1:${web}/n${i}`);
      expect(answer).toEqual({ status: 200, body: `hello /n${i}` });
      await settle();
    }
    expect(up.stats.requests).toBe(6);
    expect(up.stats.connections).toBe(1);
    expect(proxy.counters().upstreamReused).toBe(5);
  });

  it("opens new connections for requests at the same time, and keeps them for the next ones", async () => {
    const web = await origin();
    const up = await upstreamProxy();
    const { port } = await proxyTo(up.port);
    const round = () => Promise.all([1, 2, 3].map((i) => get(port, `http://127.0.0.1:${web}/p${i}`)));
    for (const answer of await round()) expect(answer.status).toBe(200);
    await settle();
    expect(up.stats.connections).toBe(3);
    for (const answer of await round()) expect(answer.status).toBe(200);
    expect(up.stats.connections).toBe(3);
  });

  it("sends a request again on a new connection when the kept one is dropped before answering", async () => {
    const web = await origin();
    const up = await upstreamProxy({ dropSecond: true });
    const { proxy, port } = await proxyTo(up.port);
    expect(await get(port, `http://127.0.0.1:${web}/first`)).toEqual({ status: 200, body: "hello /first" });
    await settle();
    expect(await get(port, `http://127.0.0.1:${web}/second`)).toEqual({ status: 200, body: "hello /second" });
    expect(proxy.counters().upstreamRetried).toBe(1);
    expect(up.stats.connections).toBe(2);
  });

  it("sends neither a POST nor a request that timed out again", async () => {
    const web = await origin();
    const dropper = await upstreamProxy({ dropSecond: true });
    const a = await proxyTo(dropper.port);
    await get(a.port, `http://127.0.0.1:${web}/first`);
    await settle();
    // The upstream may have acted on the POST before it dropped the connection: 502, not twice.
    expect((await get(a.port, `http://127.0.0.1:${web}/deploy`, "POST")).status).toBe(502);
    expect(dropper.stats.methods).toEqual(["GET", "POST"]);
    expect(a.proxy.counters().upstreamRetried).toBe(0);

    const staller = await upstreamProxy({ stallSecond: true });
    const b = await proxyTo(staller.port, 300);
    await get(b.port, `http://127.0.0.1:${web}/first`);
    await settle();
    expect((await get(b.port, `http://127.0.0.1:${web}/slow`)).status).toBe(504);
    expect(staller.stats.requests).toBe(2);
    expect(b.proxy.counters().upstreamRetried).toBe(0);
  });

  it("closes the upstream connection of an upload its client left after an early answer", async () => {
    const web = await origin();
    const up = await upstreamProxy({ refuseBodies: true });
    const { port } = await proxyTo(up.port);
    for (let i = 0; i < 3; i++) {
      const client = net.connect(port, "127.0.0.1");
      client.write(
        `POST http://127.0.0.1:${web}/upload HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1000000\r\n\r\n`,
      );
      client.write(Buffer.alloc(100));
      let seen = "";
      await new Promise<void>((resolve) =>
        client.on("data", (d: Buffer) => {
          seen += d.toString("latin1");
          if (seen.includes("\r\n\r\n")) resolve();
        }),
      );
      expect(seen).toMatch(/^HTTP\/1\.1 403/);
      client.destroy();
    }
    await until(() => up.stats.closed === 3);
    expect(up.stats.connections).toBe(3);
    expect(up.stats.closed).toBe(3);
  });

  it("does not keep a connection that was in use when the settings changed", async () => {
    const slowWeb = await listen(
      http.createServer((req, res) => setTimeout(() => res.end(`late ${req.url}`), 100)),
    );
    const up = await upstreamProxy();
    const other = await upstreamProxy();
    const { port, settings } = await proxyTo(up.port);
    const pending = get(port, `http://127.0.0.1:${slowWeb}/inflight`);
    await until(() => up.stats.requests === 1);
    settings.set(configFromEnv({ http_proxy: `http://127.0.0.1:${other.port}` }));
    expect(await pending).toEqual({ status: 200, body: "late /inflight" });
    await until(() => up.stats.closed === 1);
    expect(up.stats.closed).toBe(1);
    expect(other.stats.requests).toBe(0);
  });

  it("keeps no more than its bound after a flood of requests at once", async () => {
    // Slow answers keep all of them in flight together.
    const web = await listen(
      http.createServer((req, res) => setTimeout(() => res.end(`late ${req.url}`), 200)),
    );
    const up = await upstreamProxy();
    const { port } = await proxyTo(up.port);
    const answers = await Promise.all(
      Array.from({ length: 150 }, (_, i) => get(port, `http://127.0.0.1:${web}/f${i}`)),
    );
    expect(answers.every((a) => a.status === 200)).toBe(true);
    // Each had a connection of its own; past the pool's 8 per upstream, those are closed.
    expect(up.stats.connections).toBeGreaterThan(8);
    await until(() => up.stats.connections - up.stats.closed <= 8);
    await settle();
    const kept = up.stats.connections - up.stats.closed;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThanOrEqual(8);
  });

  it("lets a kept connection go when the upstream closes it, and when the settings change", async () => {
    const web = await origin();
    const up = await upstreamProxy();
    const other = await upstreamProxy();
    const { port, settings } = await proxyTo(up.port);
    await get(port, `http://127.0.0.1:${web}/a`);
    await settle();
    expect(up.stats.closed).toBe(0);
    settings.set(configFromEnv({ http_proxy: `http://127.0.0.1:${other.port}` }));
    await settle();
    // The connection kept for the old upstream is closed, and the next request goes the new way.
    expect(up.stats.closed).toBe(1);
    expect(await get(port, `http://127.0.0.1:${web}/b`)).toEqual({ status: 200, body: "hello /b" });
    expect(other.stats.requests).toBe(1);
    expect(up.stats.requests).toBe(1);
  });
});

describe("UpstreamPool", () => {
  async function connectedPair(): Promise<{ client: net.Socket; server: net.Socket }> {
    let server: net.Socket | undefined;
    const listener = net.createServer((s) => {
      server = s;
    });
    const port = await listen(listener);
    const client = net.connect(port, "127.0.0.1");
    await new Promise((r) => client.once("connect", r));
    while (!server) await settle();
    closers.push(() => {
      client.destroy();
      server?.destroy();
    });
    return { client, server };
  }

  it("keeps at most its bounds, hands back the newest, and drops what the far end closes", async () => {
    const pool = new UpstreamPool({ perUpstream: 2, max: 3, idleMs: 60_000 });
    const pairs = await Promise.all([1, 2, 3, 4].map(() => connectedPair()));
    expect(pool.put("a", pairs[0]!.client)).toBe(true);
    expect(pool.put("a", pairs[1]!.client)).toBe(true);
    expect(pool.put("a", pairs[2]!.client)).toBe(false); // over perUpstream: destroyed
    expect(pairs[2]!.client.destroyed).toBe(true);
    expect(pool.put("b", pairs[3]!.client)).toBe(true);
    expect(pool.size).toBe(3);
    pairs[3]!.server.end(); // the far end closes an idle one
    await settle();
    expect(pool.size).toBe(2);
    expect(pool.take("b")).toBeUndefined();
    expect(pool.take("a")).toBe(pairs[1]!.client);
    expect(pool.take("a")).toBe(pairs[0]!.client);
    expect(pool.take("a")).toBeUndefined();
    expect(pool.size).toBe(0);
  });

  it("drops an idle connection after idleMs, and one that hears anything while idle", async () => {
    const pool = new UpstreamPool({ idleMs: 50 });
    const [quiet, chatty] = await Promise.all([connectedPair(), connectedPair()]);
    pool.put("a", quiet.client);
    pool.put("b", chatty.client);
    chatty.server.write("unasked");
    await settle();
    expect(chatty.client.destroyed).toBe(true);
    expect(pool.size).toBe(1);
    await new Promise((r) => setTimeout(r, 120));
    expect(quiet.client.destroyed).toBe(true);
    expect(pool.size).toBe(0);
  });
});
