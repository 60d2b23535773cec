import net from "node:net";
import type { Duplex } from "node:stream";
import fc from "fast-check";
import { SocksClient } from "socks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSocksServer, SocksRefusal, type SocksServer } from "../src/index.js";
import { parseGreeting, parsePasswordAuth, parseRequest } from "../src/socks5-wire.js";

const FUZZ = Number(process.env.FUZZ_SCALE ?? 1);

/** An echo server standing for a guest service; the dialer reaches it for 10.0.0.2:7 only. */
async function echoServer(): Promise<{ port: number; close(): void }> {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

/** Sends raw bytes, resolves with everything answered until the server closes. */
function raw(port: number, bytes: Buffer): Promise<Buffer> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    const got: Buffer[] = [];
    c.on("data", (b) => got.push(b));
    c.on("error", () => {});
    c.on("close", () => resolve(Buffer.concat(got)));
    c.end(bytes);
    setTimeout(() => c.destroy(), 3000);
  });
}

describe("createSocksServer", () => {
  let echo: { port: number; close(): void };
  let server: SocksServer;
  let port: number;
  const dialled: string[] = [];

  beforeAll(async () => {
    echo = await echoServer();
    server = createSocksServer({
      auth: { username: "door", password: "s3cret" },
      timeoutMs: 1000,
      dial: async (host, p, kind): Promise<Duplex> => {
        dialled.push(`${kind}:${host}:${p}`);
        if (host === "refused.test") throw new SocksRefusal("refused", "nothing listens");
        if (host !== "10.0.0.2" && host !== "guest.test")
          throw new SocksRefusal("not-allowed", "not a guest");
        return net.connect(echo.port, "127.0.0.1");
      },
    });
    port = (await server.listen("127.0.0.1", 0)).port;
  });

  afterAll(async () => {
    await server.close();
    echo.close();
  });

  const connect = (host: string, userId = "door", password = "s3cret") =>
    SocksClient.createConnection({
      proxy: { host: "127.0.0.1", port, type: 5, userId, password },
      command: "connect",
      destination: { host, port: 7 },
      timeout: 3000,
    });

  it("tunnels to what the dialer reaches, by address and by name", async () => {
    for (const host of ["10.0.0.2", "guest.test"]) {
      const { socket } = await connect(host);
      socket.write("ping");
      const [reply] = (await new Promise((r) => socket.once("data", (b) => r([b])))) as Buffer[];
      expect(reply!.toString()).toBe("ping");
      socket.destroy();
    }
    expect(dialled).toContain("ipv4:10.0.0.2:7");
    expect(dialled).toContain("domain:guest.test:7");
  });

  it("answers refusals with SOCKS5's reply codes", async () => {
    await expect(connect("10.9.9.9")).rejects.toThrow(/Socks5 proxy rejected connection - NotAllowed/i);
    await expect(connect("refused.test")).rejects.toThrow(/ConnectionRefused/i);
    await expect(connect("10.0.0.2", "door", "wrong")).rejects.toThrow(/Authentication failed/i);
    // BIND, after a good greeting and password: "command not supported" (7).
    const login = Buffer.from([5, 1, 2, 1, 4, ...Buffer.from("door"), 6, ...Buffer.from("s3cret")]);
    const bind = await raw(port, Buffer.concat([login, Buffer.from([5, 2, 0, 1, 10, 0, 0, 2, 0, 7])]));
    expect([...bind.subarray(0, 6)]).toEqual([5, 2, 1, 0, 5, 7]);
    const counters = server.counters();
    expect(counters.refused).toMatchObject({ "not-allowed": 1, refused: 1, auth: 1, command: 1 });
  });

  it("turns away a client offering no usable method, and one that is not SOCKS5", async () => {
    expect([...(await raw(port, Buffer.from([5, 1, 0])))]).toEqual([5, 0xff]);
    expect((await raw(port, Buffer.from("GET / HTTP/1.1\r\n\r\n"))).length).toBe(0);
  });

  it("cuts off a handshake that never completes, and one over its size", async () => {
    const started = Date.now();
    await new Promise<void>((resolve) => {
      const c = net.connect(port, "127.0.0.1", () => c.write(Buffer.from([5])));
      c.on("error", () => {});
      c.on("close", () => resolve());
    });
    expect(Date.now() - started).toBeLessThan(2900);
    const before = server.counters().refused.protocol ?? 0;
    // No handshake message is 2000 bytes long: closed unanswered, counted.
    expect((await raw(port, Buffer.concat([Buffer.from([5, 255]), Buffer.alloc(2000, 1)]))).length).toBe(0);
    expect(server.counters().refused.protocol).toBe(before + 1);
  });

  it("survives whatever a client sends and keeps serving", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        // A valid greeting and authentication, then noise where the request goes.
        const prefix = Buffer.from([5, 1, 2, 1, 4, ...Buffer.from("door"), 6, ...Buffer.from("s3cret")]);
        await raw(port, Buffer.concat([prefix, Buffer.from(bytes)]));
        await raw(port, Buffer.from(bytes));
      }),
      { numRuns: 60 * FUZZ },
    );
    const { socket } = await connect("10.0.0.2");
    socket.destroy();
  });
});

describe("a host client that opens too many connections", () => {
  it("is turned away beyond maxConnections, counted, while the others are served", async () => {
    const server = createSocksServer({
      maxConnections: 3,
      timeoutMs: 2000,
      dial: async () => {
        throw new SocksRefusal("not-allowed", "test");
      },
    });
    const { port } = await server.listen("127.0.0.1", 0);
    const sockets = await Promise.all(
      Array.from(
        { length: 5 },
        () =>
          new Promise<net.Socket>((resolve) => {
            const c = net.connect(port, "127.0.0.1", () => resolve(c));
            c.on("error", () => {});
          }),
      ),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(server.counters().refused.busy).toBe(2);
    for (const s of sockets) s.destroy();
    await server.close();
  });
});

describe("SOCKS5 wire parsers", () => {
  it("never throw, and say how much they used within the buffer", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        const data = Buffer.from(bytes);
        for (const parse of [parseGreeting, parsePasswordAuth, parseRequest]) {
          const r = parse(data);
          if ("used" in r) expect(r.used).toBeLessThanOrEqual(data.length);
        }
      }),
      { numRuns: 5000 * FUZZ },
    );
  });

  it("reads the three address types", () => {
    const v6 = Buffer.from([5, 1, 0, 4, ...Buffer.alloc(15), 1, 0, 80]);
    expect(parseRequest(v6)).toEqual({
      value: { command: 1, host: "0:0:0:0:0:0:0:1", kind: "ipv6", port: 80 },
      used: 22,
    });
    const name = Buffer.from([5, 1, 0, 3, 4, ...Buffer.from("a.bc"), 0x1f, 0x90]);
    expect(parseRequest(name)).toEqual({
      value: { command: 1, host: "a.bc", kind: "domain", port: 8080 },
      used: 11,
    });
    expect(parseRequest(Buffer.from([5, 1, 0, 9, 0, 0]))).toMatchObject({ reply: 8 });
  });
});
