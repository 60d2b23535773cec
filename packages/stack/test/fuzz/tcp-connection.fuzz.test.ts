/**
 * The TCP connection state machine under arbitrary peer segments (any flags, sequence and
 * acknowledgment numbers near and far, windows, payloads, options), application calls and clock
 * jumps. It never throws, and what it sends stays true to what it was given: data bytes are the
 * application's at their sequence numbers, within the window the peer offered; acknowledgments
 * cover only what the peer sent and never go back; the advertised window does not shrink; data
 * delivered is the peer's byte stream; no timer is left overdue; nothing is sent once closed;
 * left alone, no connection stays half open or half closed.
 */
import { fuzz } from "@desktopd/fuzz";
import { describe, expect, it } from "vitest";
import { seqAdd, seqDiff, seqGe, seqGt, seqLe } from "../../src/tcp/seq.js";
import {
  LOCAL_PORT,
  PEER_PORT,
  type PeerSegment,
  roundTripSegment,
  TcpHarness,
} from "../../src/testing/tcp-harness.js";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpSegment } from "../../src/wire/tcp.js";
import { fc, u16, u32 } from "./arbitraries.js";

/** The byte at sequence number `seq` of the peer's stream, and the application's `k`-th byte. */
const peerByte = (seq: number) => Math.imul(seq + 1, 0x9e3779b1) >>> 24;
const appByte = (k: number) => Math.imul(k + 7, 0x85ebca77) >>> 24;
const stream = (byte: (k: number) => number, from: number, length: number) => {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = byte(from + i);
  return b;
};

const flags = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(TCP_ACK, TCP_ACK, TCP_ACK | TCP_PSH, TCP_ACK | TCP_FIN) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(TCP_RST, TCP_RST | TCP_ACK, TCP_SYN, TCP_SYN | TCP_ACK, TCP_FIN, 0),
  },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x3f }) },
);
const window = fc.oneof(fc.constant(65535), fc.constant(0), fc.integer({ min: 1, max: 3000 }), u16);
const segment = fc.record({
  kind: fc.constant("segment" as const),
  flags,
  /** Where seq lies: at the stack's last ack, past the peer's highest byte, or anywhere. */
  seqBase: fc.constantFrom("acked", "high", "far"),
  seqDelta: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: -3000, max: 3000 }) },
  ),
  far: u32,
  /** Which ack: all sent, part of it, older, beyond, or anywhere. */
  ackMode: fc.constantFrom("all", "all", "part", "old", "beyond", "far"),
  ackFraction: fc.double({ min: 0, max: 1, noNaN: true }),
  ackDelta: fc.integer({ min: 1, max: 3000 }),
  window,
  length: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.nat(100), fc.nat(3000)),
  mss: fc.option(u16, { freq: 4, nil: undefined }),
  windowScale: fc.option(fc.integer({ min: 0, max: 20 }), { freq: 4, nil: undefined }),
  sack: fc.option(fc.array(fc.tuple(fc.nat(6000), fc.nat(3000))), { freq: 3, nil: undefined }),
});
const action = fc.oneof(
  { weight: 40, arbitrary: segment },
  {
    weight: 5,
    arbitrary: fc.record({ kind: fc.constant("dupacks" as const), n: fc.integer({ min: 1, max: 4 }) }),
  },
  {
    weight: 10,
    arbitrary: fc.record({ kind: fc.constant("send" as const), n: fc.integer({ min: 1, max: 6000 }) }),
  },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("close" as const) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("backlog" as const), bytes: fc.nat(100_000) }) },
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      ms: fc.oneof(fc.nat(1000), fc.nat(120_000)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("abort" as const) }) },
);
type Segment = typeof segment extends fc.Arbitrary<infer T> ? T : never;

const synOptions = fc.record({
  iss: u32,
  window,
  mss: fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
  windowScale: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
  sackPermitted: fc.boolean(),
});
const scenario = fc.record({
  open: fc.constantFrom("passive", "established", "active", "establishedActive"),
  syn: synOptions,
  options: fc.record(
    {
      mss: fc.oneof(fc.constant(1460), fc.integer({ min: 64, max: 1460 })),
      receiveBuffer: fc.integer({ min: 1000, max: 70_000 }),
      sendBuffer: fc.integer({ min: 1000, max: 20_000 }),
    },
    { requiredKeys: ["mss"] },
  ),
  seed: u32,
  actions: fc.array(action, { maxLength: 40 }),
});

/** What the test knows of the exchange, from the outside. */
class Observer {
  irs: number | undefined;
  /** The scale of the peer's windows, fixed by the SYN the connection accepted. */
  sndScale = 0;
  /** Whether that SYN offered window scaling, and the shift our own SYN offered. */
  peerScales = false;
  ourScale: number | undefined;
  /** Every segment the peer sent: for the ack and window bounds. */
  readonly peer: { seg: TcpSegment; sndMax: number }[] = [];
  appQueued = 0;
  closeCalled = false;
  delivered = 0;
  lastAck: number | undefined;
  lastEdge: number | undefined;
  high = 0;
  /** Highest data sequence end sent so far, relative to iss. */
  sentEnd = 0;
  /** The SYN-ACK that completed an active open. */
  synAck: TcpSegment | undefined;

  constructor(
    readonly h: TcpHarness,
    readonly mss: number,
  ) {}

  /** The connection took `syn` (the peer's SYN or SYN-ACK): sequence numbers and scales are fixed. */
  synchronized(syn: TcpSegment): void {
    this.irs = syn.seq;
    this.high = seqAdd(syn.seq, 1);
    this.sndScale = syn.windowScale ?? 0;
    this.peerScales = syn.windowScale !== undefined;
  }

  /** Our windows are scaled only when both SYNs offered it (RFC 7323 2.2). */
  get rcvScale(): number {
    return this.peerScales ? (this.ourScale ?? 0) : 0;
  }

  lastPeerAck(): number | undefined {
    return this.peer.findLast(({ seg }) => seg.flags & TCP_ACK)?.seg.ack;
  }

  /** Data the stack may send: up to the largest ack it took plus the largest window offered. */
  sendLimit(): number {
    const iss = this.h.iss;
    let acked = 0;
    let wnd = 0;
    for (const { seg, sndMax } of this.peer) {
      if (seg.flags & TCP_ACK && seqGe(seg.ack, iss) && seqLe(seg.ack, sndMax))
        acked = Math.max(acked, seqDiff(seg.ack, iss));
      // RFC 7323 2.2: the window of a SYN is never scaled.
      wnd = Math.max(wnd, seg.flags & TCP_SYN ? seg.window : seg.window * 2 ** this.sndScale);
    }
    return acked + wnd;
  }

  /** The peer's highest sequence end (SYN and FIN count), relative to irs. */
  peerEnd(): number {
    let end = 0;
    for (const { seg } of this.peer) {
      const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
      const rel = seqDiff(seqAdd(seg.seq, len), this.irs!);
      if (rel > end) end = rel;
    }
    return end;
  }

  check(out: TcpSegment[], wasClosed: boolean): void {
    const h = this.h;
    if (wasClosed) expect(out).toEqual([]);
    for (const s of out) {
      if (s.flags & TCP_SYN && s.windowScale !== undefined) this.ourScale = s.windowScale;
      const offset = seqDiff(s.seq, seqAdd(h.iss, 1));
      if (s.payload.length > 0) {
        expect(offset).toBeGreaterThanOrEqual(0);
        expect(offset + s.payload.length).toBeLessThanOrEqual(this.appQueued);
        expect(s.payload.equals(stream(appByte, offset, s.payload.length)), `bytes at ${offset}`).toBe(true);
        expect(seqDiff(s.seq, h.iss) + s.payload.length, "data beyond the peer's window").toBeLessThanOrEqual(
          this.sendLimit(),
        );
        this.sentEnd = Math.max(this.sentEnd, offset + 1 + s.payload.length);
      }
      if (s.flags & TCP_FIN) expect(offset + s.payload.length).toBe(this.appQueued);
      if (s.flags & TCP_ACK) {
        const ack = seqDiff(s.ack, this.irs!);
        expect(ack).toBeGreaterThanOrEqual(1);
        expect(ack, "acknowledges what the peer never sent").toBeLessThanOrEqual(this.peerEnd());
        if (this.lastAck !== undefined) expect(ack).toBeGreaterThanOrEqual(this.lastAck);
        this.lastAck = ack;
        const edge = ack + (s.flags & TCP_SYN ? s.window : s.window * 2 ** this.rcvScale);
        // A retransmitted SYN-ACK is a copy of the first, with its unscaled window.
        if (this.lastEdge !== undefined && !(s.flags & TCP_SYN))
          expect(edge, "window shrank").toBeGreaterThanOrEqual(this.lastEdge);
        this.lastEdge = edge;
      }
    }
    const data = h.received;
    const fresh = data.subarray(this.delivered);
    const from = seqAdd(this.irs ?? 0, 1 + this.delivered);
    expect(fresh.equals(stream((k) => peerByte(seqAdd(from, k)), 0, fresh.length)), "delivered bytes").toBe(
      true,
    );
    this.delivered = data.length;
    expect(h.closeReasons.length).toBeLessThanOrEqual(1);
    const at = h.conn.pollAt();
    if (h.conn.isClosed) expect(at).toBeUndefined();
    else if (at !== undefined) expect(at).toBeGreaterThan(h.now);
  }
}

/** Sends `p` from the scripted peer, recording it (and, for the SYN-ACK taken, the negotiation). */
function send(h: TcpHarness, o: Observer, p: PeerSegment): void {
  const before = h.state;
  const sndMax = h.sndMax;
  const seg = h.peerSend(p);
  o.peer.push({ seg, sndMax });
  if (before === "SYN-SENT" && h.state !== "SYN-SENT" && h.state !== "CLOSED") {
    o.synchronized(seg);
    o.synAck = seg;
  }
}

function peerSegment(h: TcpHarness, o: Observer, a: Segment): void {
  const base = a.seqBase === "acked" && o.lastAck !== undefined ? seqAdd(o.irs!, o.lastAck) : o.high;
  const seq = a.seqBase === "far" || o.irs === undefined ? a.far : seqAdd(base, a.seqDelta);
  const sndMax = h.sndMax;
  const una = o.lastPeerAck() ?? h.iss;
  const ack = {
    all: sndMax,
    part: seqAdd(una, Math.floor(Math.max(0, seqDiff(sndMax, una)) * a.ackFraction)),
    old: seqAdd(sndMax, -a.ackDelta),
    beyond: seqAdd(sndMax, a.ackDelta),
    far: a.far ^ 0x5555,
  }[a.ackMode];
  // The peer's bytes are a function of their sequence number, whatever segment carries them.
  const first = seqAdd(seq, a.flags & TCP_SYN ? 1 : 0);
  const payload = stream((k) => peerByte(seqAdd(first, k)), 0, a.length);
  const sack = a.sack?.map(([back, len]): [number, number] => [
    seqAdd(sndMax, -back),
    seqAdd(sndMax, len - back),
  ]);
  const { mss, windowScale } = a;
  send(h, o, { flags: a.flags, seq, ack, window: a.window, payload, mss, windowScale, sack });
  const end = seqAdd(first, a.length);
  if (a.seqBase !== "far" && o.irs !== undefined && seqGt(end, o.high)) o.high = end;
}

describe("TCP Connection", () => {
  it("never throws, and keeps to its data, the peer's window and its own, under arbitrary segments", () => {
    fuzz(
      "tcp-connection",
      "arbitrary segments",
      scenario,
      ({ open, syn, options, seed, actions }) => {
        const passive = open === "passive" || open === "established";
        const h = passive
          ? TcpHarness.passive({ ...options, seed }, syn)
          : TcpHarness.active({ ...options, seed });
        const o = new Observer(h, options.mss);
        if (passive) {
          // The SYN the harness sent, as the connection parsed it.
          const { iss, window: w, mss, windowScale, sackPermitted } = syn;
          const seg = roundTripSegment(
            {
              srcPort: PEER_PORT,
              dstPort: LOCAL_PORT,
              seq: iss,
              ack: 0,
              flags: TCP_SYN,
              window: w,
              ...(mss === undefined ? {} : { mss }),
              ...(windowScale === undefined ? {} : { windowScale }),
              sackPermitted,
            },
            undefined,
          );
          o.peer.push({ seg, sndMax: h.iss });
          o.synchronized(seg);
        }
        if (open === "established")
          send(h, o, { flags: TCP_ACK, seq: seqAdd(syn.iss, 1), ack: seqAdd(h.iss, 1), window: syn.window });
        if (open === "establishedActive") {
          send(h, o, { ...syn, flags: TCP_SYN | TCP_ACK, seq: syn.iss, ack: seqAdd(h.iss, 1) });
        }
        o.check(h.takeOut(), false);
        for (const a of actions) {
          const wasClosed = h.conn.isClosed;
          switch (a.kind) {
            case "segment":
              peerSegment(h, o, a);
              break;
            case "dupacks": {
              const last = o.peer.findLast(({ seg }) => seg.flags & TCP_ACK)?.seg;
              if (!last || o.lastAck === undefined) break;
              const seq = seqAdd(o.irs!, o.lastAck);
              for (let i = 0; i < a.n; i++)
                send(h, o, { flags: TCP_ACK, seq, ack: last.ack, window: last.window });
              break;
            }
            case "send": {
              const data = stream(appByte, o.appQueued, a.n);
              // Data offered after close() (or once closed) is refused, not queued.
              if (!o.closeCalled && !h.conn.isClosed) o.appQueued += a.n;
              h.conn.send(data);
              break;
            }
            case "close":
              o.closeCalled = true;
              h.conn.close();
              break;
            case "backlog":
              h.backlog = a.bytes;
              h.conn.receiveSpaceOpened();
              break;
            case "advance":
              h.advance(a.ms);
              break;
            case "abort":
              h.conn.abort();
              break;
          }
          o.check(h.takeOut(), wasClosed);
        }
        // Left alone for an hour, nothing is half open or half closed any more.
        h.advance(3_600_000);
        o.check(h.takeOut(), false);
        expect(["ESTABLISHED", "CLOSE-WAIT", "FIN-WAIT-2", "CLOSED"]).toContain(h.state);
      },
      250,
    );
  });
});
