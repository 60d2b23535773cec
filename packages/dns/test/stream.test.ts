/**
 * DNS over TCP streams handed over by the stack (through `gatewayDnsPolicy`) or the listener:
 * connection caps per guest address and in total, the idle timeout on an injected clock, the
 * per-connection pipelining cap, and streams that arrive destroyed or fail at any moment — none
 * may throw, leak a slot or leave a counter behind.
 */
import { once } from "node:events";
import { connect } from "node:net";
import { Duplex } from "node:stream";
import * as packet from "dns-packet";
import { describe, expect, it } from "vitest";
import {
  createDnsHandler,
  createFixedLayer,
  createResolver,
  type DnsHandler,
  gatewayDnsPolicy,
  type HandlerOptions,
  type Layer,
  listenDns,
} from "../src/index.js";
import { ManualClock } from "./support/clock.js";

const GATEWAY = "192.168.65.1";

const framed = (id: number, name: string) =>
  packet.streamEncode({
    type: "query",
    id,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type: "A" }],
  });

/** The guest's end as the stack hands it over: what the server writes is collected. */
function guestStream(): { stream: Duplex; written: Buffer[] } {
  const written: Buffer[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _enc, cb) {
      written.push(chunk);
      cb();
    },
  });
  return { stream, written };
}

const turns = async (n = 5) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

function fixedHandler(o: Partial<HandlerOptions> = {}): DnsHandler {
  return createDnsHandler({
    resolver: createResolver([createFixedLayer({ hostAddress: "10.0.0.1" })]),
    ...o,
  });
}

/** Connects a guest's TCP flow to the gateway's port 53 through the real binding. */
function connectGuest(handler: DnsHandler, guestIp: string, guestPort: number): Duplex {
  const flow = { protocol: "tcp" as const, guestIp, guestPort, dstIp: GATEWAY, dstPort: 53 };
  const decision = gatewayDnsPolicy(handler, GATEWAY).tcp(flow);
  const { stream } = guestStream();
  if (decision?.action !== "handle") throw new Error("DNS to the gateway is not served in-process");
  decision.handler(stream, flow);
  return stream;
}

function gated(): { layer: Layer; release: () => void } {
  let release = () => {};
  const gate = new Promise<void>((r) => {
    release = r;
  });
  return {
    release: () => release(),
    layer: {
      name: "gated",
      resolve: async (q) => {
        await gate;
        return {
          rcode: "NOERROR",
          answers: [{ name: q.name, type: "A", ttl: 5, data: "10.9.9.9" }],
          authorities: [],
          additionals: [],
          authoritative: false,
        };
      },
    },
  };
}

describe("TCP connection caps", () => {
  it("closes a guest's connections beyond its own cap and beyond the total at once, counted", async () => {
    const h = fixedHandler({ maxTcpConnectionsPerClient: 2, maxTcpConnections: 3 });
    const a = [1, 2, 3].map((p) => connectGuest(h, "192.168.65.3", 40000 + p));
    expect(a.map((s) => s.destroyed)).toEqual([false, false, true]);
    const b = connectGuest(h, "192.168.65.4", 40000);
    const c = connectGuest(h, "192.168.65.5", 40000);
    expect([b.destroyed, c.destroyed]).toEqual([false, true]);
    expect(h.counters()).toMatchObject({
      limited: { "tcp-client": 1, "tcp-connections": 1 },
      tcpConnections: { open: 3, total: 3 },
    });
    // A closed connection gives its slot back.
    a[0]!.destroy();
    await turns();
    expect(h.counters().tcpConnections.open).toBe(2);
    expect(connectGuest(h, "192.168.65.3", 40009).destroyed).toBe(false);
  });

  it("has the standalone listener close connections beyond its cap too", async () => {
    const h = fixedHandler({ maxTcpConnections: 1 });
    const listener = await listenDns(h, { port: 0, maxTcpConnections: 100 });
    const first = connect(listener.port, listener.host);
    await once(first, "connect");
    for (let i = 0; i < 100 && h.counters().tcpConnections.open < 1; i++) await turns(1);
    const second = connect(listener.port, listener.host);
    second.on("error", () => {});
    await once(second, "close");
    expect(h.counters()).toMatchObject({ limited: { "tcp-connections": 1 }, tcpConnections: { open: 1 } });
    first.destroy();
    await listener.close();
  });
});

describe("TCP idle timeout", () => {
  it("closes a connection quiet for tcpIdleMs on the handler's clock; each byte from the guest restarts it", async () => {
    const clock = new ManualClock();
    const h = fixedHandler({ clock, tcpIdleMs: 1000 });
    const { stream, written } = guestStream();
    h.serveStream(stream, "192.168.65.3:40000");
    clock.advance(999);
    stream.push(framed(1, "host.docker.internal"));
    await turns();
    expect(written).toHaveLength(1);
    clock.advance(999);
    expect(stream.destroyed).toBe(false);
    clock.advance(1);
    expect(stream.destroyed).toBe(true);
    await turns();
    expect(h.counters().tcpConnections).toEqual({ open: 0, total: 1, idleClosed: 1 });
    // Its timer went with it.
    expect(clock.pending).toBe(0);
  });

  it("is on for the standalone listener's connections", async () => {
    const clock = new ManualClock();
    const h = fixedHandler({ clock, tcpIdleMs: 30_000 });
    const listener = await listenDns(h, { port: 0 });
    const sock = connect(listener.port, listener.host);
    await once(sock, "connect");
    for (let i = 0; i < 100 && h.counters().tcpConnections.open < 1; i++) await turns(1);
    const closed = once(sock, "close");
    clock.advance(30_000);
    await closed;
    expect(h.counters().tcpConnections.idleClosed).toBe(1);
    await listener.close();
  });
});

describe("TCP pipelining cap", () => {
  it("stops reading a connection with maxTcpInflight queries unanswered, counted, and answers all later", async () => {
    const { layer, release } = gated();
    const h = createDnsHandler({ resolver: createResolver([layer]), maxTcpInflight: 2 });
    const { stream, written } = guestStream();
    h.serveStream(stream, "192.168.65.3:40000");
    stream.push(Buffer.concat([1, 2, 3, 4, 5].map((id) => framed(id, `n${id}.test`))));
    await turns();
    expect(h.counters()).toMatchObject({ inflight: 2, queries: { tcp: 2 }, limited: { "tcp-pipeline": 1 } });
    release();
    for (let i = 0; i < 50 && written.length < 5; i++) await turns(1);
    expect(written.map((b) => b.readUInt16BE(2)).sort()).toEqual([1, 2, 3, 4, 5]);
    stream.destroy();
  });
});

describe("TCP stream failures", () => {
  it("takes a stream that is already destroyed, or destroyed with an error, without a throw or a slot held", async () => {
    const h = fixedHandler({ maxTcpConnectionsPerClient: 1 });
    const plain = guestStream().stream;
    plain.destroy();
    h.serveStream(plain, "192.168.65.3:1");
    const failed = guestStream().stream;
    // The 'error' is emitted on a later tick: an unheard one would crash the process.
    failed.destroy(new Error("ECONNRESET"));
    h.serveStream(failed, "192.168.65.3:2");
    await turns();
    expect(h.counters().tcpConnections).toEqual({ open: 0, total: 0, idleClosed: 0 });
    expect(connectGuest(h, "192.168.65.3", 3).destroyed).toBe(false);
  });

  it("survives an error in the middle of a query: the late answer is dropped, the slots come back", async () => {
    const { layer, release } = gated();
    const h = createDnsHandler({ resolver: createResolver([layer]), maxTcpConnectionsPerClient: 1 });
    const { stream, written } = guestStream();
    h.serveStream(stream, "192.168.65.3:40000");
    stream.push(framed(1, "slow.test"));
    await turns();
    expect(h.counters().inflight).toBe(1);
    stream.destroy(new Error("ECONNRESET"));
    release();
    await turns();
    expect(written).toEqual([]);
    expect(h.counters()).toMatchObject({ inflight: 0, tcpConnections: { open: 0, total: 1 } });
    expect(connectGuest(h, "192.168.65.3", 40001).destroyed).toBe(false);
  });

  it("closes a stream that emits 'error' without being destroyed, and one that is not a byte stream", async () => {
    const h = fixedHandler();
    const { stream } = guestStream();
    h.serveStream(stream, "192.168.65.3:1");
    stream.emit("error", new Error("EPIPE"));
    await turns();
    expect(stream.destroyed).toBe(true);
    const text = new Duplex({ objectMode: true, read() {}, write: (_c, _e, cb) => cb() });
    h.serveStream(text, "192.168.65.3:2");
    text.push("not bytes");
    await turns();
    expect(text.destroyed).toBe(true);
    expect(h.counters()).toMatchObject({
      malformed: { "tcp-framing": 1 },
      tcpConnections: { open: 0, total: 2 },
    });
  });
});
