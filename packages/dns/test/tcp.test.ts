/**
 * DNS over TCP on a real loopback socket (RFC 7766): pipelined queries in one segment, a query
 * split byte by byte, answers matched by id, and the connection closed after the client's end.
 * Fixed records only, so nothing leaves the machine and no root is needed.
 */
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { Duplex } from "node:stream";
import * as packet from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createDnsHandler,
  createDnsServer,
  createFixedLayer,
  createResolver,
  type DnsServer,
  type Layer,
  listenDns,
} from "../src/index.js";

const framed = (id: number, name: string) =>
  packet.streamEncode({
    type: "query",
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type: "A" }],
  });

/** Reads framed responses until `count` arrived or the server closes. */
async function readResponses(sock: Socket, count: number): Promise<packet.DecodedPacket[]> {
  let buf = Buffer.alloc(0);
  const out: packet.DecodedPacket[] = [];
  return new Promise((resolve) => {
    sock.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(packet.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length >= count) resolve(out);
    });
    sock.on("close", () => resolve(out));
  });
}

describe("DNS over TCP", () => {
  let server: DnsServer;
  beforeAll(async () => {
    server = await createDnsServer({
      hostAddress: "192.168.65.254",
      records: [{ name: "*.test.internal", type: "A", data: "10.0.0.7" }],
      host: false,
      listen: { host: "127.0.0.1", port: 0 },
    });
  });
  afterAll(() => server?.close());

  it("answers pipelined queries sent in one write", async () => {
    const sock = connect(server.port, server.host);
    await once(sock, "connect");
    const replies = readResponses(sock, 3);
    sock.write(
      Buffer.concat([
        framed(1, "host.docker.internal"),
        framed(2, "a.test.internal"),
        framed(3, "nope.example"),
      ]),
    );
    const got = (await replies).sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
    sock.destroy();
    expect(
      got.map((r) => [r.id, (r.flags ?? 0) & 0xf, r.answers?.map((a) => (a as { data: string }).data)]),
    ).toEqual([
      [1, 0, ["192.168.65.254"]],
      [2, 0, ["10.0.0.7"]],
      [3, 5, []], // no host layer: REFUSED
    ]);
  });

  it("reassembles a query sent byte by byte, then closes after the client's end", async () => {
    const sock = connect(server.port, server.host);
    await once(sock, "connect");
    sock.setNoDelay(true);
    const replies = readResponses(sock, 2);
    const q = framed(9, "x.test.internal");
    for (const byte of q) {
      sock.write(Buffer.from([byte]));
      await new Promise((r) => setImmediate(r));
    }
    sock.end();
    const got = await replies;
    expect(got.map((r) => r.id)).toEqual([9]);
    // The server's side closes after the client saw the end; wait for it to be counted.
    for (let i = 0; i < 100 && server.handler.counters().tcpConnections.open > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(server.handler.counters().tcpConnections.open).toBe(0);
  });

  it("answers more pipelined queries than it keeps in flight, instead of dropping the connection", async () => {
    const sock = connect(server.port, server.host);
    await once(sock, "connect");
    const replies = readResponses(sock, 200);
    sock.write(Buffer.concat(Array.from({ length: 200 }, (_, i) => framed(i + 1, `n${i}.test.internal`))));
    const got = await replies;
    sock.destroy();
    expect(got.map((r) => r.id).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(
      Array.from({ length: 200 }, (_, i) => i + 1),
    );
  });
});

describe("DNS over TCP, limits", () => {
  it("answers queries sent before the client's FIN (half-close), then closes", async () => {
    // A layer that answers on a later turn of the event loop, as an upstream would: the FIN
    // is read before the answer is ready.
    const slow: Layer = {
      name: "slow",
      resolve: () =>
        new Promise((resolve) =>
          setTimeout(
            () =>
              resolve({
                rcode: "NOERROR",
                answers: [{ name: "slow.test", type: "A", ttl: 1, data: "10.9.9.9" }],
                authorities: [],
                additionals: [],
                authoritative: true,
              }),
            50,
          ),
        ),
    };
    const listener = await listenDns(createDnsHandler({ resolver: createResolver([slow]) }), { port: 0 });
    const sock = connect(listener.port, listener.host);
    await once(sock, "connect");
    const replies = readResponses(sock, 2);
    sock.end(framed(5, "slow.test"));
    const got = await replies;
    await listener.close();
    expect(got.map((r) => [r.id, (r.answers?.[0] as { data?: string })?.data])).toEqual([[5, "10.9.9.9"]]);
  });

  it("closes connections beyond maxTcpConnections on arrival", async () => {
    const handler = createDnsHandler({
      resolver: createResolver([createFixedLayer({ hostAddress: "10.0.0.1" })]),
    });
    const listener = await listenDns(handler, { port: 0, maxTcpConnections: 1 });
    const first = connect(listener.port, listener.host);
    const firstReplies = readResponses(first, 1);
    first.write(framed(1, "host.docker.internal"));
    expect((await firstReplies).map((r) => r.id)).toEqual([1]);
    const second = connect(listener.port, listener.host);
    const secondReplies = readResponses(second, 1);
    second.on("error", () => {});
    second.write(framed(2, "host.docker.internal"));
    expect(await secondReplies).toEqual([]);
    first.destroy();
    await listener.close();
  });

  it("stops reading from a client that does not read its answers", async () => {
    const handler = createDnsHandler({
      resolver: createResolver([createFixedLayer({ hostAddress: "10.0.0.1" })]),
    });
    // The client's receive side: holds every write until it reads again.
    let held: (() => void) | undefined;
    let flowing = false;
    const answers: Buffer[] = [];
    const stream = new Duplex({
      writableHighWaterMark: 1024,
      read() {},
      write(chunk: Buffer, _enc, cb) {
        answers.push(chunk);
        if (flowing) cb();
        else held = cb;
      },
    });
    handler.serveStream(stream, "t");
    stream.push(Buffer.concat(Array.from({ length: 300 }, (_, i) => framed(i, "host.docker.internal"))));
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    const stalled = handler.counters().queries.tcp;
    // Parsing stopped at the in-flight limit and the full write buffer, well short of all 300.
    expect(stalled).toBeLessThan(300);
    expect(stream.writableLength).toBeLessThan(64 * 1024);
    expect(stream.destroyed).toBe(false);
    flowing = true;
    held?.();
    for (let i = 0; i < 50 && answers.length < 300; i++) await new Promise((r) => setImmediate(r));
    expect(answers).toHaveLength(300);
    stream.destroy();
  });
});
