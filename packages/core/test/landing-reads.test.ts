import { once } from "node:events";
import net from "node:net";
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { canLandReads, withLandingReads } from "../src/landing-reads.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A paused-on-connect server whose connections are re-homed; `receive` sees every read. */
async function server(receive: (socket: number, bytes: Buffer) => boolean) {
  const sockets: net.Socket[] = [];
  const srv = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (accepted) => {
    const n = sockets.length;
    const socket = withLandingReads(accepted, (bytes) => receive(n, bytes));
    sockets.push(socket);
    socket.resume();
  });
  srv.listen(0, "127.0.0.1");
  await once(srv, "listening");
  const port = (srv.address() as net.AddressInfo).port;
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return { srv, port, sockets };
}

async function client(port: number): Promise<net.Socket> {
  const c = net.connect({ port, host: "127.0.0.1", allowHalfOpen: true });
  cleanups.push(() => c.destroy());
  await once(c, "connect");
  return c;
}

const until = async (done: () => boolean) => {
  for (let i = 0; i < 200 && !done(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(done()).toBe(true);
};

describe("withLandingReads", () => {
  it("hands every connection's reads over as views of one buffer, not a new one per read", async () => {
    const got: { socket: number; text: string; memory: ArrayBufferLike }[] = [];
    const { port } = await server((socket, bytes) => {
      got.push({ socket, text: bytes.toString(), memory: bytes.buffer });
      return true;
    });
    const a = await client(port);
    a.write("first");
    await until(() => got.length === 1);
    const b = await client(port);
    b.write("second");
    await until(() => got.length === 2);
    a.write("third");
    await until(() => got.length === 3);
    expect(got.map((g) => [g.socket, g.text])).toEqual([
      [0, "first"],
      [1, "second"],
      [0, "third"],
    ]);
    expect(new Set(got.map((g) => g.memory)).size).toBe(1);
  });

  it("stops reading when the receiver says false, until resume()", async () => {
    let reads = 0;
    const { port, sockets } = await server(() => {
      reads++;
      return false;
    });
    const c = await client(port);
    c.write("one");
    await until(() => reads === 1);
    c.write("two");
    await new Promise((r) => setTimeout(r, 50));
    expect(reads).toBe(1);
    sockets[0]!.resume();
    await until(() => reads === 2);
  });

  it("writes, ends and closes through the new socket, and the server counts it down", async () => {
    const { srv, port, sockets } = await server(() => true);
    const c = await client(port);
    await until(() => sockets.length === 1);
    const answer = once(c, "data");
    sockets[0]!.write("hello");
    expect(String((await answer)[0])).toBe("hello");
    const ended = once(c, "end");
    sockets[0]!.end();
    await ended;
    c.end();
    const serverClosed = once(srv, "close");
    srv.close();
    // The server's 'close' waits for its last connection: it comes only if the count moved along.
    await serverClosed;
    expect(sockets[0]!.destroyed).toBe(true);
  });

  it("falls back to 'data' events for a socket without a handle yet", async () => {
    const plain = net.createServer((s) => s.end("over data events"));
    plain.listen(0, "127.0.0.1");
    await once(plain, "listening");
    cleanups.push(() => plain.close());
    const texts: string[] = [];
    const socket = withLandingReads(new net.Socket(), (bytes) => {
      texts.push(bytes.toString());
      return true;
    });
    cleanups.push(() => socket.destroy());
    socket.connect((plain.address() as net.AddressInfo).port, "127.0.0.1");
    await once(socket, "end");
    expect(texts.join("")).toBe("over data events");
  });

  it("canLandReads: only a connected plain TCP socket with nothing waiting either way", async () => {
    const plain = net.createServer((s) => s.on("error", () => {}));
    plain.listen(0, "127.0.0.1");
    await once(plain, "listening");
    cleanups.push(() => plain.close());
    const port = (plain.address() as net.AddressInfo).port;
    const connecting = net.connect(port, "127.0.0.1");
    cleanups.push(() => connecting.destroy());
    expect(canLandReads(connecting)).toBe(false);
    await once(connecting, "connect");
    expect(canLandReads(connecting)).toBe(true);
    connecting.pause();
    connecting.unshift(Buffer.from("waiting"));
    expect(canLandReads(connecting)).toBe(false);
    const secure = new tls.TLSSocket(new net.Socket());
    cleanups.push(() => secure.destroy());
    expect(canLandReads(secure)).toBe(false);
    expect(canLandReads({})).toBe(false);
  });
});
