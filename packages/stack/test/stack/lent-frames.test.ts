/**
 * Frames a link lends (`FrameMeta.lent`, as the TAP does): the in-memory link copies each frame
 * into one buffer and writes 0xEE over it once the stack returns, so anything the stack kept a
 * view of would reach the host as garbage. Host peers are real sockets on 127.0.0.1.
 */
import dgram from "node:dgram";
import { once } from "node:events";
import net from "node:net";
import os from "node:os";
import { fuzzAsync, mutated } from "@desktopd/fuzz";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { tcpFrame, udpFrames } from "../../src/iface/frames.js";
import { type FrameHarness, frameHarness, type SeenFrame } from "../../src/testing/frame-harness.js";
import { parseIpv4Address, parseMac } from "../../src/wire/address.js";
import { ETHERTYPE_IPV6 } from "../../src/wire/ethernet.js";
import { parseIpv6 } from "../../src/wire/ipv6.js";
import { parseTcpWith, TCP_ACK, TCP_PSH, TCP_SYN } from "../../src/wire/tcp.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };

const cleanups: (() => unknown)[] = [];
let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

const lending = () => frameHarness({}, undefined, { lend: true });

const haveIpv6Loopback = os.networkInterfaces().lo?.some((a) => a.address === "::1") === true;
const GUEST6 = "fdc4:f303:9324::3";
const HOST6 = "fdc4:f303:9324::254";

/** A host TCP server on `address` that collects what it is sent. */
async function collector(address: string) {
  const got = { bytes: Buffer.alloc(0) };
  const server = net.createServer((s) => {
    s.on("data", (b: Buffer) => {
      got.bytes = Buffer.concat([got.bytes, b]);
    });
    s.on("error", () => {});
  });
  server.listen(0, address);
  await once(server, "listening");
  cleanups.push(() => server.close());
  return { got, port: (server.address() as net.AddressInfo).port };
}

/**
 * The guest connects over `family` and sends three parts, the third before the second; the host
 * server must get them whole and in order.
 */
async function sendsInParts(family: 4 | 6, port: number, got: { bytes: Buffer }) {
  h = lending();
  const g = h.guest(A.mac, A.ip);
  const dst = family === 4 ? h.config.hostAddress : HOST6;
  const segment = (t: Parameters<typeof g.tcp>[0]) => (family === 4 ? g.tcp(t) : g.tcp6(GUEST6, t));
  segment({ dst, srcPort: 40000, dstPort: port, flags: TCP_SYN, seq: 1000 });
  for (let i = 0; i < 50 && h.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  await h.settle();
  // The harness parses IPv4 frames only: an IPv6 segment is read here.
  const segmentOf = (f: SeenFrame) =>
    family === 4
      ? f.tcp
      : f.eth.ethertype === ETHERTYPE_IPV6
        ? parseTcpWith(parseIpv6(f.eth.payload).payload, 0, { verifyChecksum: false })
        : undefined;
  const synAck = h
    .take()
    .map(segmentOf)
    .find((t) => t?.flags === (TCP_SYN | TCP_ACK));
  expect(synAck).toBeDefined();
  const ack = synAck!.seq + 1;
  const one = Buffer.from("first part, ");
  const two = Buffer.from("second part, ");
  const three = Buffer.from("third part.");
  const base = 1001;
  const send = (seq: number, payload: Buffer) =>
    segment({ dst, srcPort: 40000, dstPort: port, flags: TCP_ACK | TCP_PSH, seq, ack, payload });
  send(base, one);
  // The third part before the second: held out of order until the hole is filled.
  send(base + one.length + two.length, three);
  await h.settle();
  send(base + one.length, two);
  await h.settle();
  const expected = Buffer.concat([one, two, three]).toString();
  for (let i = 0; i < 100 && got.bytes.length < expected.length; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  expect(got.bytes.toString()).toBe(expected);
}

describe("lent frames", () => {
  it("TCP data reaches the host socket as sent, in order and after a hole is filled", async () => {
    const { got, port } = await collector("127.0.0.1");
    await sendsInParts(4, port, got);
  });

  it.skipIf(!haveIpv6Loopback)(
    `the same over IPv6${haveIpv6Loopback ? "" : " (SKIPPED: this machine's loopback has no ::1)"}`,
    async () => {
      const { got, port } = await collector("::1");
      await sendsInParts(6, port, got);
    },
  );

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

  it("hostile frames, lent, are answered or dropped and leave the stack serving", async () => {
    // Every flow refused before a host socket opens: mutated addresses must not leave the machine.
    h = frameHarness({ egress: { rules: ["deny *"] } }, undefined, { lend: true });
    const harness = h;
    const g = harness.guest(A.mac, A.ip);
    const route = {
      srcMac: g.mac,
      dstMac: parseMac(harness.config.gatewayMac)!,
      srcIp: parseIpv4Address(A.ip)!,
      dstIp: parseIpv4Address(harness.config.hostAddress)!,
    };
    const valid = fc.constantFrom(
      tcpFrame(
        route,
        { srcPort: 40000, dstPort: 80, seq: 1, ack: 0, flags: TCP_SYN, window: 65535 },
        undefined,
      ),
      tcpFrame(
        route,
        { srcPort: 40000, dstPort: 80, seq: 2, ack: 9, flags: TCP_ACK | TCP_PSH, window: 65535 },
        Buffer.from("data"),
      ),
      udpFrames(route, 40001, 53, Buffer.from("a query"), 1500)[0]!,
    );
    await fuzzAsync(
      "stack",
      "lent hostile frames",
      fc.array(mutated(valid), { minLength: 1, maxLength: 20 }),
      async (frames) => {
        for (const f of frames) g.send(f);
        await harness.settle();
        harness.take();
      },
      40,
    );
    expect(harness.stack.counters().drops["internal-error"]).toBeUndefined();
    // A guest the fuzzing did not speak for (mutated frames may have claimed A's address).
    harness.guest("02:00:00:00:00:0b", "192.168.65.4").ping(harness.config.gateway);
    await harness.settle();
    expect(harness.take().some((f) => f.icmp?.type === 0)).toBe(true);
  });
});
