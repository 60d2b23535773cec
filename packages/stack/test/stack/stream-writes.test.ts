/**
 * How a stream served in-process (a policy's `handle`) reaches the guest: what its writer writes
 * within one turn of the event loop leaves together at the stack's flush, as Linux's autocorking
 * does, and nothing waits beyond that turn. Frame by frame, on a manual clock.
 */
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { seqAdd } from "../../src/tcp/seq.js";
import { type FrameHarness, frameHarness, type SeenFrame } from "../../src/testing/frame-harness.js";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from "../../src/wire/tcp.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };
const HEAD = "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n";

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A guest connected to port 80 of the gateway, served by `handler`; `request` sends it data. */
async function served(handler: (s: Duplex) => void) {
  h = frameHarness({
    policy: { tcp: (f) => (f.dstPort === 80 ? { action: "handle", handler } : undefined) },
  });
  const harness = h;
  const guest = harness.guest(A.mac, A.ip);
  const dst = harness.config.gateway;
  guest.tcp({ dst, srcPort: 41000, dstPort: 80, flags: TCP_SYN, seq: 100, window: 65535, mss: 1460 });
  await harness.settle();
  const synAck = harness.take(A.ip).find((f) => f.tcp)!.tcp!;
  const ack = seqAdd(synAck.seq, 1);
  guest.tcp({ dst, srcPort: 41000, dstPort: 80, flags: TCP_ACK, seq: 101, ack, window: 65535 });
  await harness.settle();
  const request = async (text: string) => {
    guest.tcp({
      dst,
      srcPort: 41000,
      dstPort: 80,
      flags: TCP_ACK | TCP_PSH,
      seq: 101,
      ack,
      window: 65535,
      payload: Buffer.from(text),
    });
    await harness.settle();
  };
  /** The TCP frames to the guest since the last call, pure ACKs left out. */
  const sent = (): SeenFrame[] =>
    harness.take(A.ip).filter((f) => f.tcp && (f.tcp.payload.length > 0 || f.tcp.flags & TCP_FIN));
  return { request, sent, firstSeq: ack };
}

describe("a served stream's writes", () => {
  it("sends an answer's head, body and FIN, written in one turn, as one segment", async () => {
    const { request, sent, firstSeq } = await served((s) => {
      s.once("data", () => {
        s.write(HEAD);
        s.write("hello");
        s.end();
      });
    });
    await request("GET / HTTP/1.1\r\n\r\n");
    const frames = sent();
    expect(frames).toHaveLength(1);
    const tcp = frames[0]!.tcp!;
    expect(tcp.seq).toBe(firstSeq);
    expect(tcp.flags & TCP_FIN).toBe(TCP_FIN);
    expect(Buffer.from(tcp.payload).toString()).toBe(`${HEAD}hello`);
  });

  it("sends what one turn wrote at that turn's end, without waiting for the next write", async () => {
    let stream: Duplex | undefined;
    const { request, sent } = await served((s) => {
      stream = s;
      s.once("data", () => s.write(HEAD));
    });
    await request("GET / HTTP/1.1\r\n\r\n");
    const head = sent();
    expect(head).toHaveLength(1);
    expect(Buffer.from(head[0]!.tcp!.payload).toString()).toBe(HEAD);
    expect(head[0]!.tcp!.flags & TCP_FIN).toBe(0);

    stream!.write("hello");
    await h!.settle();
    const body = sent();
    expect(body).toHaveLength(1);
    expect(Buffer.from(body[0]!.tcp!.payload).toString()).toBe("hello");
    expect(body[0]!.tcp!.seq).toBe(seqAdd(head[0]!.tcp!.seq, HEAD.length));

    stream!.end();
    await h!.settle();
    const fin = sent();
    expect(fin).toHaveLength(1);
    expect(fin[0]!.tcp!.payload.length).toBe(0);
    expect(fin[0]!.tcp!.flags & TCP_FIN).toBe(TCP_FIN);
  });

  it("cuts many small writes of one turn into full segments, the tail last", async () => {
    const piece = Buffer.alloc(100, 0x61);
    const { request, sent } = await served((s) => {
      s.once("data", () => {
        for (let i = 0; i < 40; i++) s.write(piece);
      });
    });
    await request("GET / HTTP/1.1\r\n\r\n");
    const lengths = sent().map((f) => f.tcp!.payload.length);
    // 4000 bytes with the link's MSS of 1460: two full segments and the rest, not 40 runts.
    expect(lengths).toEqual([1460, 1460, 1080]);
  });

  it("sends what was written before a destroy in the same turn, then the reset", async () => {
    const { request, firstSeq } = await served((s) => {
      s.once("data", () => {
        s.write("HTTP/1.1 400 Bad Request\r\n\r\n");
        s.destroy();
      });
    });
    await request("GARBAGE\r\n\r\n");
    const frames = h!.take(A.ip).filter((f) => f.tcp && (f.tcp.payload.length > 0 || f.tcp.flags & TCP_RST));
    expect(frames.map((f) => [f.tcp!.seq - firstSeq, f.tcp!.payload.length, f.tcp!.flags & TCP_RST])).toEqual(
      [
        [0, 28, 0],
        [28, 0, TCP_RST],
      ],
    );
  });

  it("ends a finished stream again quietly, and still tells a callback that it had finished", async () => {
    let stream: Duplex | undefined;
    const { request, sent } = await served((s) => {
      stream = s;
      s.once("data", () => s.end("bye"));
    });
    await request("GET / HTTP/1.1\r\n\r\n");
    expect(sent()).toHaveLength(1);
    await new Promise((r) => setImmediate(r));
    expect(stream!.writableFinished).toBe(true);
    // As Node's HTTP server does to every connection its client ended.
    expect(stream!.end()).toBe(stream);
    const told = await new Promise<Error | null | undefined>((resolve) => stream!.end(resolve));
    expect((told as NodeJS.ErrnoException | undefined)?.code).toBe("ERR_STREAM_ALREADY_FINISHED");
    await h!.settle();
    expect(stream!.destroyed).toBe(false);
    expect(sent()).toHaveLength(0);
  });
});
