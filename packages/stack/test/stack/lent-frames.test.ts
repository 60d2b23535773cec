/**
 * Frames a link lends (`FrameMeta.lent`, as the TAP does): the in-memory link copies each frame
 * into one buffer and writes 0xEE over it once the stack returns, so anything the stack kept a
 * view of would reach the host as garbage. Host peers are real sockets on 127.0.0.1.
 */
import dgram from "node:dgram";
import { once } from "node:events";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { type FrameHarness, frameHarness } from "../../src/testing/frame-harness.js";
import { TCP_ACK, TCP_PSH, TCP_SYN } from "../../src/wire/tcp.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };

const cleanups: (() => unknown)[] = [];
let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

const lending = () => frameHarness({}, undefined, { lend: true });

describe("lent frames", () => {
  it("TCP data reaches the host socket as sent, in order and after a hole is filled", async () => {
    let received = Buffer.alloc(0);
    const server = net.createServer((s) => {
      s.on("data", (b: Buffer) => {
        received = Buffer.concat([received, b]);
      });
      s.on("error", () => {});
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => server.close());
    const port = (server.address() as net.AddressInfo).port;

    h = lending();
    const g = h.guest(A.mac, A.ip);
    const dst = h.config.hostAddress;
    g.tcp({ dst, srcPort: 40000, dstPort: port, flags: TCP_SYN, seq: 1000 });
    for (let i = 0; i < 50 && h.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await h.settle();
    const synAck = h.take().find((f) => f.tcp?.flags === (TCP_SYN | TCP_ACK))?.tcp;
    expect(synAck).toBeDefined();
    const ack = synAck!.seq + 1;
    const part = (text: string) => Buffer.from(text);
    const one = part("first part, ");
    const two = part("second part, ");
    const three = part("third part.");
    const base = 1001;
    const send = (seq: number, payload: Buffer) =>
      g.tcp({ dst, srcPort: 40000, dstPort: port, flags: TCP_ACK | TCP_PSH, seq, ack, payload });
    send(base, one);
    // The third part before the second: held out of order until the hole is filled.
    send(base + one.length + two.length, three);
    await h.settle();
    send(base + one.length, two);
    await h.settle();
    const expected = Buffer.concat([one, two, three]).toString();
    for (let i = 0; i < 100 && received.length < expected.length; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(received.toString()).toBe(expected);
  });

  it("a UDP datagram is copied before the stack keeps it", async () => {
    const server = dgram.createSocket("udp4");
    server.bind(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => server.close());
    const got = once(server, "message") as Promise<[Buffer]>;

    h = lending();
    const g = h.guest(A.mac, A.ip);
    g.udp(h.config.hostAddress, 40001, server.address().port, Buffer.from("a datagram, intact"));
    await h.settle();
    const [message] = await got;
    expect(message.toString()).toBe("a datagram, intact");
  });
});
