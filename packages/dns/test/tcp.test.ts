/**
 * DNS over TCP on a real loopback socket (RFC 7766): pipelined queries in one segment, a query
 * split byte by byte, answers matched by id, and the connection closed after the client's end.
 * Fixed records only, so nothing leaves the machine and no root is needed.
 */
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import * as packet from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDnsServer, type DnsServer } from "../src/index.js";

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
});
