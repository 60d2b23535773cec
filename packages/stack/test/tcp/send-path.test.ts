/**
 * The send path without copies: a batch writer's short tail waits for the batch's end instead of
 * leaving as a runt segment, segments spanning the writer's buffers are views of them, and each
 * buffer is handed back once the peer acknowledged all of it.
 */
import { describe, expect, it } from "vitest";
import { MAX_VIEWS, SendBuffer } from "../../src/tcp/send-buffer.js";
import { TcpHarness } from "../../src/testing/tcp-harness.js";
import { TCP_ACK, TCP_FIN, TCP_RST } from "../../src/wire/tcp.js";

const pattern = (offset: number, len: number) =>
  Buffer.from(Array.from({ length: len }, (_, i) => (offset + i) % 251));

/** Established with a wide window (scale 7) so only the MSS cuts segments. */
function established(options: Parameters<typeof TcpHarness.established>[0] = {}) {
  const h = TcpHarness.established(options, { windowScale: 7 });
  h.autoFlush = false;
  return h;
}

describe("send(data, more)", () => {
  it("sends whole segments at once and holds the short tail for flush", () => {
    const h = established();
    const flushesBefore = h.events.flushRequests;
    h.conn.send(pattern(0, 2 * 1460 + 500), true);
    expect(h.takeOut().map((s) => s.payload.length)).toEqual([1460, 1460]);
    expect(h.events.flushRequests).toBeGreaterThan(flushesBefore);
    h.conn.flush();
    const [tail] = h.takeOut();
    expect(tail!.payload.equals(pattern(2920, 500))).toBe(true);
  });

  it("joins a held tail with the next write into a whole segment", () => {
    const h = established();
    h.conn.send(pattern(0, 1000), true);
    expect(h.takeOut()).toHaveLength(0);
    h.conn.send(pattern(1000, 460), true);
    const out = h.takeOut();
    expect(out).toHaveLength(1);
    expect(out[0]!.payload.equals(pattern(0, 1460))).toBe(true);
    h.conn.flush();
    expect(h.takeOut()).toHaveLength(0);
  });

  it("without `more` the tail leaves at once", () => {
    const h = established();
    h.conn.send(pattern(0, 1500));
    expect(h.takeOut().map((s) => s.payload.length)).toEqual([1460, 40]);
  });

  it("a close right after sends the held tail with the FIN", () => {
    const h = established();
    h.conn.send(pattern(0, 300), true);
    h.conn.close();
    const out = h.takeOut();
    expect(Buffer.concat(out.map((s) => s.payload)).equals(pattern(0, 300))).toBe(true);
    expect(out.at(-1)!.flags & TCP_FIN).toBe(TCP_FIN);
  });

  it("an abort right after sends the held tail first, then the reset", () => {
    const h = established();
    h.conn.send(pattern(0, 300), true);
    expect(h.takeOut()).toHaveLength(0);
    h.conn.abort();
    const out = h.takeOut();
    expect(out.map((s) => s.payload.length)).toEqual([300, 0]);
    expect(Buffer.from(out[0]!.payload).equals(pattern(0, 300))).toBe(true);
    expect(out[1]!.flags & TCP_RST).toBe(TCP_RST);
    expect(out[1]!.seq).toBe((out[0]!.seq + 300) >>> 0);
  });

  it("cuts a super-segment (TSO) at whole segments and holds the rest", () => {
    const h = established({ maxBurstSegment: 64 * 1024 });
    h.conn.send(pattern(0, 5000), true);
    // Three whole segments leave as one super-segment; the 620 bytes after them wait.
    expect(h.takeOut().map((s) => s.payload.length)).toEqual([3 * 1460]);
    h.conn.flush();
    expect(h.takeOut().map((s) => s.payload.length)).toEqual([5000 - 3 * 1460]);
  });

  it("hands each written buffer back once, when all of it is acknowledged or the connection ends", () => {
    const released: Buffer[] = [];
    const h = established({ releaseSent: (chunk) => released.push(chunk) });
    const chunks = [pattern(0, 1000), pattern(1000, 1000), pattern(2000, 1000)];
    for (const c of chunks) h.conn.send(c);
    h.conn.flush();
    const sent = h.takeOut();
    expect(Buffer.concat(sent.map((s) => s.payload)).equals(pattern(0, 3000))).toBe(true);
    // Up to the middle of the second buffer: only the first is free.
    h.peerSend({ flags: TCP_ACK, ack: (h.iss + 1 + 1500) >>> 0 });
    expect(released).toEqual([chunks[0]]);
    expect(released[0]).toBe(chunks[0]);
    h.conn.abort();
    expect(released).toHaveLength(3);
    expect(released[1]).toBe(chunks[1]);
    expect(released[2]).toBe(chunks[2]);
  });
});

describe("SendBuffer.views", () => {
  it("joins a range that spans more than MAX_VIEWS buffers into one", () => {
    const s = new SendBuffer();
    for (let i = 0; i < 100; i++) s.push(pattern(i * 10, 10));
    const few = s.views(0, 10 * MAX_VIEWS) as Buffer[];
    expect(few).toHaveLength(MAX_VIEWS);
    const many = s.views(5, 990);
    expect(Buffer.isBuffer(many)).toBe(true);
    expect((many as Buffer).equals(pattern(5, 990))).toBe(true);
  });

  it("gives views of the written buffers, several when the range spans them", () => {
    const s = new SendBuffer();
    const a = pattern(0, 10);
    const b = pattern(10, 10);
    s.push(a);
    s.push(b);
    const one = s.views(2, 5);
    expect(Buffer.isBuffer(one)).toBe(true);
    const span = s.views(5, 10) as Buffer[];
    expect(span).toHaveLength(2);
    expect(Buffer.concat(span).equals(pattern(5, 10))).toBe(true);
    // Views, not copies: a change to the written buffer shows through.
    a[6] = 0xee;
    b[0] = 0xdd;
    expect(span[0]![1]).toBe(0xee);
    expect(span[1]![0]).toBe(0xdd);
    s.consume(12);
    expect(Buffer.concat([s.views(0, 8)].flat()).equals(b.subarray(2))).toBe(true);
  });
});
