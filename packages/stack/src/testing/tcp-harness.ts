/**
 * A test harness for one `Connection` (the smoltcp `TestSocket` / gVisor `testbench` idea):
 * it owns the connection with a `ManualClock` and a `SeededRandom`, records every segment the
 * connection emits (round-tripped through `emitTcp`/`parseTcp`, so the recorded segment is
 * what a peer would really see), scripts the remote peer with real wire bytes, and drives
 * timers only through `pollAt()`/`poll(now)`.
 *
 * Assertions follow gVisor's `checker` package: small composable predicates applied to one
 * segment, e.g. `expectSegment(h.lastOut, Flags(TCP_SYN | TCP_ACK), Ack(h.peerIss + 1), Mss(1460))`.
 * They throw plain `Error`s, so the harness does not depend on a test framework.
 */
import { ManualClock, type Random, SeededRandom } from "@desktopd/core";
import { type CloseReason, Connection, type ConnectionOptions } from "../tcp/connection.js";
import { seqAdd, seqGt } from "../tcp/seq.js";
import type { TcpState } from "../tcp/state.js";
import { copyPayload, payloadLength, type Payload as SegmentData } from "../wire/payload.js";
import {
  emitTcp,
  formatTcp,
  formatTcpFlags,
  parseTcp,
  TCP_ACK,
  TCP_FIN,
  TCP_SYN,
  type TcpEmitFields,
  type TcpSegment,
  tcpHeaderLength,
} from "../wire/tcp.js";

/** Guest (peer) and stack addresses used for the checksum pseudo-header. */
const PEER_IP = 0x0a00020f; // 10.0.2.15
const LOCAL_IP = 0x0a000202; // 10.0.2.2

/** Encodes `fields` + `payload` to wire bytes and parses them back: a segment as a receiver sees it. */
export function roundTripSegment(
  fields: TcpEmitFields,
  payload: SegmentData | undefined,
  srcIp = PEER_IP,
  dstIp = LOCAL_IP,
): TcpSegment {
  const plen = payload ? payloadLength(payload) : 0;
  const hlen = tcpHeaderLength(fields);
  const buf = Buffer.alloc(hlen + plen);
  if (payload) copyPayload(payload, buf, hlen);
  const len = emitTcp(buf, 0, srcIp, dstIp, fields, plen);
  return parseTcp(buf.subarray(0, len), srcIp, dstIp);
}

// ---- Checkers -----------------------------------------------------------------------------

/** One property of a segment: returns a description of the mismatch, or undefined. */
export type SegmentCheck = (seg: TcpSegment) => string | undefined;

const mismatch = (what: string, want: unknown, got: unknown): string | undefined =>
  want === got ? undefined : `${what}: want ${String(want)}, got ${String(got)}`;

/** Exactly these flags (PSH is ignored unless `strict`). */
export const Flags =
  (flags: number, strict = false): SegmentCheck =>
  (s) => {
    const mask = strict ? 0xff : ~0x08 & 0xff;
    return (s.flags & mask) === (flags & mask)
      ? undefined
      : `flags: want ${formatTcpFlags(flags)}, got ${formatTcpFlags(s.flags)}`;
  };
/** These flags set, others don't matter. */
export const FlagsSet =
  (flags: number): SegmentCheck =>
  (s) =>
    (s.flags & flags) === flags
      ? undefined
      : `flags: want ${formatTcpFlags(flags)} set, got ${formatTcpFlags(s.flags)}`;
/** None of these flags set. */
export const FlagsClear =
  (flags: number): SegmentCheck =>
  (s) =>
    (s.flags & flags) === 0
      ? undefined
      : `flags: want ${formatTcpFlags(flags)} clear, got ${formatTcpFlags(s.flags)}`;
export const Seq =
  (seq: number): SegmentCheck =>
  (s) =>
    mismatch("seq", seq >>> 0, s.seq);
export const Ack =
  (ack: number): SegmentCheck =>
  (s) =>
    mismatch("ack", ack >>> 0, s.ack);
/** The raw (unscaled) 16-bit window field. */
export const Window =
  (window: number): SegmentCheck =>
  (s) =>
    mismatch("window", window, s.window);
/** Payload length. */
export const Len =
  (len: number): SegmentCheck =>
  (s) =>
    mismatch("len", len, s.payload.length);
export const Payload =
  (data: Buffer): SegmentCheck =>
  (s) =>
    s.payload.equals(data) ? undefined : `payload: want ${data.length} bytes ${data.toString("hex", 0, 16)}…`;
/** MSS option; `undefined` asserts it is absent. */
export const Mss =
  (mss: number | undefined): SegmentCheck =>
  (s) =>
    mismatch("mss option", mss, s.mss);
/** Window-scale option; `undefined` asserts it is absent. */
export const WindowScale =
  (shift: number | undefined): SegmentCheck =>
  (s) =>
    mismatch("wscale option", shift, s.windowScale);
export const SackPermitted =
  (on: boolean): SegmentCheck =>
  (s) =>
    mismatch("sackOK option", on, s.sackPermitted);
/** SACK blocks in order; `undefined` asserts there is no SACK option. */
export const Sack =
  (blocks: [number, number][] | undefined): SegmentCheck =>
  (s) => {
    const want = blocks?.map(([l, r]) => `${l >>> 0}-${r >>> 0}`).join(",");
    const got = s.sack?.map(([l, r]) => `${l}-${r}`).join(",");
    return mismatch("sack", want, got);
  };

/** Throws unless every check passes; the message names each failed property and the segment. */
export function expectSegment(seg: TcpSegment | undefined, ...checks: SegmentCheck[]): void {
  if (!seg) throw new Error("expected a segment, got none");
  const errors = checks.map((c) => c(seg)).filter((e): e is string => e !== undefined);
  if (errors.length > 0) throw new Error(`${errors.join("; ")}\n  in ${formatTcp(seg)}`);
}

// ---- Harness ------------------------------------------------------------------------------

export interface TcpHarnessOptions extends Partial<Omit<ConnectionOptions, "clock" | "random">> {
  /** Seed for the connection's SeededRandom (its ISN). */
  seed?: number;
  /** Replaces the SeededRandom, e.g. `{ u32: () => 0xffffff00 }` to pin the ISN. */
  random?: Random;
  /** Start time of the manual clock. */
  startMs?: number;
  /** Call `flush()` after each peer segment when the connection asked for it (default true). */
  autoFlush?: boolean;
}

/** What the scripted peer's SYN offers (defaults: MSS 1460, wscale 7, SACK permitted). */
export interface PeerSynOptions {
  iss?: number;
  window?: number;
  mss?: number | undefined;
  windowScale?: number | undefined;
  sackPermitted?: boolean;
}

export interface PeerSegment {
  flags?: number;
  /** Default: the peer's next sequence number (`peerNxt`). */
  seq?: number;
  /** Default: everything the connection has sent (`sndMax`). */
  ack?: number;
  /** Raw 16-bit window field (default 65535). */
  window?: number;
  payload?: Buffer | string;
  mss?: number;
  windowScale?: number;
  sackPermitted?: boolean;
  sack?: [number, number][];
}

export const LOCAL_PORT = 80;
export const PEER_PORT = 40000;

export class TcpHarness {
  readonly clock: ManualClock;
  readonly random: Random;
  conn!: Connection;
  /** Every segment the connection emitted, oldest first. */
  readonly out: TcpSegment[] = [];
  /** In-order data delivered by onData, as chunks. */
  readonly dataChunks: Buffer[] = [];
  events = { established: 0, fin: 0, sendSpace: 0, flushRequests: 0 };
  closeReasons: CloseReason[] = [];
  /** What `receiveBacklog()` reports: unconsumed bytes the test pretends the app holds. */
  backlog = 0;
  autoFlush: boolean;
  /** The peer's initial sequence number and next sequence number to send. */
  peerIss = 0;
  peerNxt = 0;
  /** Highest sequence end the connection has emitted (what a peer acknowledging everything acks). */
  sndMax = 0;
  /** The connection's initial sequence number (from its SYN or SYN-ACK). */
  iss = 0;

  private sentAny = false;

  private constructor(private readonly options: TcpHarnessOptions) {
    this.clock = new ManualClock(options.startMs ?? 0);
    this.random = options.random ?? new SeededRandom(options.seed ?? 1);
    this.autoFlush = options.autoFlush ?? true;
  }

  private connectionOptions(): ConnectionOptions {
    const { seed: _s, startMs: _t, autoFlush: _f, random: _r, ...rest } = this.options;
    // Every owed ACK at flush unless a test asks for delayed ACKs: most tests look at other things.
    return { mss: 1460, delayedAckMs: 0, ...rest, clock: this.clock, random: this.random };
  }

  private hooks() {
    return {
      output: (fields: TcpEmitFields, payload: SegmentData | undefined) => {
        const seg = roundTripSegment(fields, payload, LOCAL_IP, PEER_IP);
        // The view the connection lent us must be copied before returning.
        seg.payload = Buffer.from(seg.payload);
        this.out.push(seg);
        const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
        if (seg.flags & TCP_SYN) this.iss = seg.seq;
        const end = seqAdd(seg.seq, len);
        if (!this.sentAny || seqGt(end, this.sndMax)) this.sndMax = end;
        this.sentAny = true;
      },
      onData: (data: Buffer) => {
        this.dataChunks.push(data);
      },
      onEstablished: () => {
        this.events.established++;
      },
      onFin: () => {
        this.events.fin++;
      },
      onSendSpace: () => {
        this.events.sendSpace++;
      },
      onClose: (reason: CloseReason) => {
        this.closeReasons.push(reason);
      },
      receiveBacklog: () => this.backlog,
      requestFlush: () => {
        this.events.flushRequests++;
      },
    };
  }

  /** The connection answers a SYN from the scripted peer: state SYN-RECEIVED, SYN-ACK recorded. */
  static passive(options: TcpHarnessOptions = {}, syn: PeerSynOptions = {}): TcpHarness {
    const h = new TcpHarness(options);
    h.peerIss = (syn.iss ?? 1000) >>> 0;
    const seg = roundTripSegment(
      {
        srcPort: PEER_PORT,
        dstPort: LOCAL_PORT,
        seq: h.peerIss,
        ack: 0,
        flags: TCP_SYN,
        window: syn.window ?? 65535,
        ...("mss" in syn ? (syn.mss === undefined ? {} : { mss: syn.mss }) : { mss: 1460 }),
        ...("windowScale" in syn
          ? syn.windowScale === undefined
            ? {}
            : { windowScale: syn.windowScale }
          : { windowScale: 7 }),
        sackPermitted: syn.sackPermitted ?? true,
      },
      undefined,
    );
    h.peerNxt = seqAdd(h.peerIss, 1);
    h.conn = Connection.accept(seg, h.connectionOptions(), h.hooks());
    return h;
  }

  /** The connection opens towards the scripted peer: state SYN-SENT, SYN recorded. */
  static active(options: TcpHarnessOptions = {}): TcpHarness {
    const h = new TcpHarness(options);
    h.conn = Connection.connect(LOCAL_PORT, PEER_PORT, h.connectionOptions(), h.hooks());
    return h;
  }

  /** Passive open completed by the peer's ACK; the recorded output is cleared. */
  static established(options: TcpHarnessOptions = {}, syn: PeerSynOptions = {}): TcpHarness {
    const h = TcpHarness.passive(options, syn);
    h.peerSend({ flags: TCP_ACK, ack: seqAdd(h.iss, 1) });
    if (h.state !== "ESTABLISHED") throw new Error(`handshake failed: ${h.state}`);
    h.clearOut();
    return h;
  }

  /** Active open completed by the peer's SYN-ACK; the recorded output is cleared. */
  static establishedActive(options: TcpHarnessOptions = {}, synAck: PeerSynOptions = {}): TcpHarness {
    const h = TcpHarness.active(options);
    h.peerIss = (synAck.iss ?? 5000) >>> 0;
    h.peerNxt = h.peerIss;
    h.peerSend({
      flags: TCP_SYN | TCP_ACK,
      ack: seqAdd(h.iss, 1),
      window: synAck.window ?? 65535,
      ...("mss" in synAck ? (synAck.mss === undefined ? {} : { mss: synAck.mss }) : { mss: 1460 }),
      ...("windowScale" in synAck
        ? synAck.windowScale === undefined
          ? {}
          : { windowScale: synAck.windowScale }
        : { windowScale: 7 }),
      sackPermitted: synAck.sackPermitted ?? true,
    });
    if (h.state !== "ESTABLISHED") throw new Error(`handshake failed: ${h.state}`);
    h.clearOut();
    return h;
  }

  get state(): TcpState {
    return this.conn.state;
  }

  get now(): number {
    return this.clock.now();
  }

  /** The most recently emitted segment. */
  get lastOut(): TcpSegment | undefined {
    return this.out[this.out.length - 1];
  }

  /** Removes and returns what was emitted since the last call. */
  takeOut(): TcpSegment[] {
    return this.out.splice(0, this.out.length);
  }

  clearOut(): void {
    this.out.length = 0;
  }

  /** All data delivered so far, concatenated. */
  get received(): Buffer {
    return Buffer.concat(this.dataChunks);
  }

  /** The next sequence number the connection will use for new data (sndMax as seen on the wire). */
  get ourNxt(): number {
    return this.sndMax;
  }

  /** Builds a segment from the scripted peer (real bytes, parsed back) and delivers it. */
  peerSend(p: PeerSegment = {}): TcpSegment {
    const payload = typeof p.payload === "string" ? Buffer.from(p.payload) : p.payload;
    const flags = p.flags ?? TCP_ACK;
    const fields: TcpEmitFields = {
      srcPort: PEER_PORT,
      dstPort: LOCAL_PORT,
      seq: (p.seq ?? this.peerNxt) >>> 0,
      ack: flags & TCP_ACK ? (p.ack ?? this.sndMax) >>> 0 : 0,
      flags,
      window: p.window ?? 65535,
    };
    if (p.mss !== undefined) fields.mss = p.mss;
    if (p.windowScale !== undefined) fields.windowScale = p.windowScale;
    if (p.sackPermitted) fields.sackPermitted = true;
    if (p.sack) fields.sack = p.sack;
    const seg = roundTripSegment(fields, payload);
    const len = seg.payload.length + (flags & TCP_SYN ? 1 : 0) + (flags & TCP_FIN ? 1 : 0);
    const end = seqAdd(seg.seq, len);
    if (seqGt(end, this.peerNxt)) this.peerNxt = end;
    this.deliver(seg);
    return seg;
  }

  /** Delivers an already built segment, then flushes like an owner finishing a batch. */
  deliver(seg: TcpSegment): void {
    const before = this.events.flushRequests;
    this.conn.onSegment(seg, this.clock.now());
    if (this.autoFlush && this.events.flushRequests > before) this.conn.flush();
  }

  /**
   * Moves the clock forward by `ms`, running `poll` at each deadline `pollAt()` reports on
   * the way (as a driver's timer would), then lands exactly at now + ms.
   */
  advance(ms: number): void {
    const target = this.clock.now() + ms;
    for (let guard = 0; ; guard++) {
      if (guard > 100_000) throw new Error("advance: pollAt() does not move forward");
      const at = this.conn.pollAt();
      if (at === undefined || at > target) break;
      if (at > this.clock.now()) this.clock.advance(at - this.clock.now());
      this.conn.poll(this.clock.now());
      const again = this.conn.pollAt();
      if (again !== undefined && again <= this.clock.now())
        throw new Error(`poll(${at}) left a timer due at ${again}`);
    }
    this.clock.advance(target - this.clock.now());
  }

  /** Advances to the next armed deadline (exactly) and polls; returns the time, or undefined if none. */
  fireNextTimer(): number | undefined {
    const at = this.conn.pollAt();
    if (at === undefined) return undefined;
    this.advance(Math.max(0, at - this.clock.now()));
    return at;
  }
}
