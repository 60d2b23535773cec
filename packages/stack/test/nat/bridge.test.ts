/**
 * The NAT bridge between a guest connection and a real host socket on 127.0.0.1, frame by frame:
 * data both ways through backpressure (the host's reads pause on a full send buffer and resume
 * on the guest's ACKs), half-close each way, and resets each way.
 */
import { once } from "node:events";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { seqAdd, seqDiff } from "../../src/tcp/seq.js";
import { type FrameHarness, frameHarness, type SeenFrame } from "../../src/testing/frame-harness.js";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from "../../src/wire/tcp.js";
import { tcpInfo } from "./tcp-info.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };
const pattern = (len: number) => Buffer.from(Array.from({ length: len }, (_, i) => (i * 7 + 1) % 251));

let h: FrameHarness | undefined;
let server: net.Server | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
  server?.close();
  server = undefined;
});

async function listen(onSocket: (s: net.Socket) => void): Promise<number> {
  server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on("error", () => {});
    onSocket(s);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return (server.address() as net.AddressInfo).port;
}

/** Real time for the host side, then the stack's batch: the frames sent to the guest since. */
async function step(harness: FrameHarness): Promise<SeenFrame[]> {
  await new Promise((r) => setTimeout(r, 5));
  await harness.settle();
  return harness.take();
}

/** A scripted guest connection: opens, ACKs what arrives in order, and records it. */
async function connect(harness: FrameHarness, port: number) {
  const g = harness.guest(A.mac, A.ip);
  const dst = harness.config.hostAddress;
  const srcPort = 45100;
  const c = { seq: 1, ack: 0, received: [] as Buffer[], fin: false, rst: false };
  g.tcp({ dst, srcPort, dstPort: port, flags: TCP_SYN, seq: 0, window: 65535 });
  let synAck: SeenFrame | undefined;
  for (let i = 0; i < 100 && !synAck; i++) synAck = (await step(harness)).find((f) => f.tcp);
  expect(synAck!.tcp!.flags & (TCP_SYN | TCP_ACK)).toBe(TCP_SYN | TCP_ACK);
  c.ack = seqAdd(synAck!.tcp!.seq, 1);
  const send = (flags: number, payload?: Buffer) => {
    g.tcp({ dst, srcPort, dstPort: port, flags, seq: c.seq, ack: c.ack, window: 65535, payload });
    c.seq = seqAdd(c.seq, (payload?.length ?? 0) + (flags & TCP_FIN ? 1 : 0));
  };
  send(TCP_ACK);
  /** Takes what arrived, ACKs it; true once `until` holds. */
  const pump = async (until: () => boolean, rounds = 400): Promise<boolean> => {
    for (let i = 0; i < rounds && !until(); i++) {
      let advanced = false;
      for (const f of await step(harness)) {
        const t = f.tcp;
        if (!t) continue;
        if (t.flags & TCP_RST) c.rst = true;
        if (t.seq === c.ack && t.payload.length > 0) {
          c.received.push(Buffer.from(t.payload));
          c.ack = seqAdd(c.ack, t.payload.length);
          advanced = true;
        }
        if (t.flags & TCP_FIN && seqDiff(seqAdd(t.seq, t.payload.length), c.ack) === 0) {
          c.fin = true;
          c.ack = seqAdd(c.ack, 1);
          advanced = true;
        }
      }
      if (advanced) send(TCP_ACK);
    }
    return until();
  };
  return { c, send, pump };
}

describe("the NAT bridge to a host socket", () => {
  it("carries a transfer larger than every buffer to the guest, then the host's FIN after it", async () => {
    const body = pattern(600_000);
    const port = await listen((s) => s.end(body));
    h = frameHarness();
    const { c, pump } = await connect(h, port);
    expect(await pump(() => c.fin)).toBe(true);
    expect(Buffer.concat(c.received).equals(body)).toBe(true);
    // The reads went through the pool, and the send buffer (64 KiB at first) had to stop them.
    const pool = h.stack.counters().memory.readPool;
    expect(pool.slabsAllocated).toBeGreaterThan(0);
    expect(h.stack.counters().tcp.segmentsRetransmitted).toBe(0);
  });

  it("carries the guest's data and FIN to the host, which still answers on its half", async () => {
    let got = Buffer.alloc(0);
    let sawEnd = false;
    const port = await listen((s) => {
      s.on("data", (d: Buffer) => {
        got = Buffer.concat([got, d]);
      });
      s.on("end", () => {
        sawEnd = true;
        s.end(Buffer.from("reply after your FIN"));
      });
    });
    h = frameHarness();
    const { c, send, pump } = await connect(h, port);
    const upload = pattern(30_000);
    for (let off = 0; off < upload.length; off += 1400)
      send(TCP_ACK | TCP_PSH, upload.subarray(off, off + 1400));
    send(TCP_ACK | TCP_FIN);
    expect(await pump(() => c.fin)).toBe(true);
    expect(got.equals(upload)).toBe(true);
    expect(sawEnd).toBe(true);
    expect(Buffer.concat(c.received).toString()).toBe("reply after your FIN");
  });

  it.runIf(process.platform === "linux")(
    "lets the host's held ACK go on each guest ACK while reads are stopped",
    async () => {
      const sockets: net.Socket[] = [];
      const port = await listen((s) => sockets.push(s));
      h = frameHarness();
      const { send, pump } = await connect(h, port);
      await pump(() => sockets.length === 1, 50);
      const sender = sockets[0]!;
      // The guest acknowledges nothing: 64 KiB fill the flow's send buffer and its reads stop.
      sender.write(pattern(100_000));
      await step(h);
      // Writes larger than a loopback segment, until the kernel holds one's ACK back (the reader
      // is not reading, so only a read or a 40 ms timer would send it).
      let held = false;
      for (let i = 0; i < 64 && !held; i++) {
        sender.write(pattern(70_000));
        await new Promise((r) => setTimeout(r, 2));
        held = (await tcpInfo(sender)).unacked > 0;
      }
      expect(held).toBe(true);
      // A guest ACK that frees nothing: the flow stays stopped, and the held ACK goes.
      send(TCP_ACK);
      await h.settle();
      expect((await tcpInfo(sender)).unacked).toBe(0);
      expect((await tcpInfo(sender)).totalRetrans).toBe(0);
    },
  );

  it("resets the guest when the host resets, and the host when the guest resets", async () => {
    const sockets: net.Socket[] = [];
    const port = await listen((s) => sockets.push(s));
    h = frameHarness();
    const first = await connect(h, port);
    await first.pump(() => sockets.length === 1, 50);
    sockets[0]!.resetAndDestroy();
    expect(await first.pump(() => first.c.rst)).toBe(true);

    await h.close();
    h = frameHarness();
    const second = await connect(h, port);
    await second.pump(() => sockets.length === 2, 50);
    // The host sees the guest's reset: an ECONNRESET (listened for), then close.
    const closed = new Promise((resolve) => sockets[1]!.once("close", resolve));
    second.send(TCP_RST);
    await step(h);
    await closed;
    expect(sockets[1]!.destroyed).toBe(true);
  });
});
