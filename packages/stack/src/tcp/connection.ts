import type { Now, Random } from "@desktopd/core";
import { type Payload, payloadLength } from "../wire/payload.js";
import {
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  type TcpEmitFields,
  type TcpSegment,
} from "../wire/tcp.js";
import { Assembler } from "./assembler.js";
import { type CongestionControl, type CongestionFactory, newReno } from "./congestion.js";
import { RttEstimator } from "./rtt.js";
import { SackScoreboard } from "./scoreboard.js";
import { SendBuffer } from "./send-buffer.js";
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from "./seq.js";
import { canReceive, TcpState } from "./state.js";
import type { TimeWaitRecord } from "./time-wait.js";
import { ConnectionTimers } from "./timers.js";

export type CloseReason = "closed" | "reset" | "refused" | "timeout" | "aborted";

/** What a connection asks of its owner. The connection itself does no I/O and sets no timers. */
export interface ConnectionHooks {
  /**
   * Emit a segment to the peer. `payload` is views (of the send buffer) the owner must copy or
   * send before returning.
   * `segmentSize` is set when the payload is a super-segment (`maxBurstSegment`) that the link
   * must cut into segments of that many bytes.
   */
  output(fields: TcpEmitFields, payload: Payload | undefined, segmentSize?: number): void;
  /** In-order data from the peer. The receiver may keep the buffer. */
  onData(data: Buffer): void;
  /** The handshake completed. */
  onEstablished(): void;
  /** The peer will send no more data. */
  onFin(): void;
  /** Room opened up in the send buffer after it was full. */
  onSendSpace(): void;
  /** The connection is gone; the owner drops it. Called once. */
  onClose(reason: CloseReason): void;
  /** Bytes delivered with onData that the application has not consumed yet (shrinks the window). */
  receiveBacklog(): number;
  /** Ask the owner to call `flush()` soon (coalesces ACKs across a batch of segments). */
  requestFlush(): void;
  /** The connection entered TIME-WAIT: nothing left but old duplicates to absorb (reclaimable). */
  onTimeWait?(): void;
}

export interface ConnectionOptions {
  clock: Now;
  random: Random;
  /** Largest segment payload our side accepts (MTU - 40). */
  mss: number;
  /** Receive buffer: the most unconsumed data we let the peer send. */
  receiveBuffer?: number;
  /** Send buffer limit above which `send` reports backpressure. */
  sendBuffer?: number;
  timeWaitMs?: number;
  /** Give up after this many consecutive retransmission timeouts. */
  maxRetransmits?: number;
  maxSynRetransmits?: number;
  /**
   * How long an orphaned connection (see `orphan()`) waits in FIN-WAIT-2 for the peer's FIN, as
   * Linux's tcp_fin_timeout; a connection whose owner still reads waits as long as the peer likes.
   */
  finWait2TimeoutMs?: number;
  /**
   * Keepalive probes after this long without a segment from the peer (0: off, the default). A peer
   * that answers none of `keepAliveProbes` probes, `keepAliveIntervalMs` apart, is timed out.
   */
  keepAliveIdleMs?: number;
  keepAliveIntervalMs?: number;
  keepAliveProbes?: number;
  /**
   * Largest payload of one emitted data segment, for a link with TCP segmentation offload
   * (rounded down to whole segments). Default (or anything up to the MSS): one MSS.
   * Windows and cwnd are still counted in bytes.
   */
  maxBurstSegment?: number;
  /** Congestion control (default NewReno). */
  congestion?: CongestionFactory;
  /**
   * How long the ACK of less than two full segments of in-order data may wait for our own data
   * to carry it (RFC 9293 3.8.6.3; default 5 ms, below the 10 ms a Linux peer's tail-loss probe
   * waits at least; 0: ACK at every flush). A request answered within it costs one frame, not two.
   */
  delayedAckMs?: number;
  /**
   * Told once of each buffer given to `send` when the connection holds none of its bytes any
   * more (acknowledged, or dropped when the connection ends): its memory may be reused.
   */
  releaseSent?: (chunk: Buffer) => void;
}

const RCV_WSCALE = 7;

/**
 * One TCP connection as a passive state machine (RFC 793/9293): segments in via
 * `onSegment`, segments out via `hooks.output`, time via `poll(now)` and `pollAt()`.
 */
export class Connection {
  state: TcpState = TcpState.Closed;
  readonly localPort: number;
  readonly remotePort: number;

  // Send side.
  private iss = 0;
  private sndUna = 0;
  private sndNxt = 0;
  /** Highest sequence sent so far; sndNxt is rewound on timeout and catches up to it again. */
  private sndMax = 0;
  private sndWnd = 0;
  private sndWl1 = 0;
  private sndWl2 = 0;
  private sndWscale = 0;
  private sndMss = 536;
  /** Sequence number of the first byte in `sendBuf`. */
  private sndBufSeq = 0;
  private readonly sendBuf: SendBuffer;
  private finQueued = false;
  private finSent = false;
  private sendBlocked = false;

  // Receive side.
  private irs = 0;
  private rcvNxt = 0;
  private rcvWscale = 0;
  /** The window field of our last ACK. */
  private lastWindow = 0;
  private rcvAdvertisedEdge = 0;
  private readonly assembler = new Assembler();
  private peerFinSeq: number | undefined;
  private finReceived = false;
  private sackOk = false;

  private readonly timers = new ConnectionTimers();
  private keepAliveSent = 0;
  private orphaned = false;
  private persistBackoff = 0;
  private retransmits = 0;
  private readonly rtt = new RttEstimator();
  private timed: { seq: number; at: number } | undefined;
  private cc: CongestionControl;
  private dupAcks = 0;
  /**
   * Room in the send buffer opened during ACK processing; the application is
   * told only after the window update, so data it queues at once is not sent against the old
   * window measured from the new sndUna (which overshoots the peer's right edge).
   */
  private sendSpaceDeferred = false;
  private readonly scoreboard = new SackScoreboard();

  private ackPending = false;
  /** A short tail of the send buffer waits for more data or the owner's flush (see `send`). */
  private tailHeld = false;
  /** rcvNxt as our last ACK carried it. */
  private rcvAcked = 0;
  private closed = false;
  /** Loss-recovery events, for counters and diagnostics. */
  readonly recovery = { timeouts: 0, fastRetransmits: 0, segmentsRetransmitted: 0 };

  private rcvBufSize: number;
  private sndBufSize: number;
  private readonly opts: Required<Omit<ConnectionOptions, "releaseSent">>;

  private constructor(
    localPort: number,
    remotePort: number,
    options: ConnectionOptions,
    private readonly hooks: ConnectionHooks,
  ) {
    this.localPort = localPort;
    this.remotePort = remotePort;
    this.opts = {
      receiveBuffer: 4 * 1024 * 1024,
      sendBuffer: 4 * 1024 * 1024,
      timeWaitMs: 30_000,
      maxRetransmits: 15,
      maxSynRetransmits: 6,
      finWait2TimeoutMs: 60_000,
      keepAliveIdleMs: 0,
      keepAliveIntervalMs: 75_000,
      keepAliveProbes: 9,
      maxBurstSegment: 0,
      congestion: newReno,
      delayedAckMs: 5,
      ...options,
    };
    this.sendBuf = new SendBuffer(options.releaseSent);
    this.rcvBufSize = this.opts.receiveBuffer;
    this.sndBufSize = this.opts.sendBuffer;
    this.cc = this.opts.congestion(this.sndMss, this.sndMss);
  }

  /** Answers a peer's SYN: the connection starts in SYN-RECEIVED and sends SYN-ACK. */
  static accept(syn: TcpSegment, options: ConnectionOptions, hooks: ConnectionHooks): Connection {
    const c = new Connection(syn.dstPort, syn.srcPort, options, hooks);
    c.irs = syn.seq;
    c.rcvNxt = seqAdd(syn.seq, 1);
    c.negotiate(syn);
    c.sndWnd = syn.window; // never scaled in a SYN
    c.sndWl1 = syn.seq;
    c.startSend(options.random.u32());
    c.setState(TcpState.SynReceived);
    c.sendSyn();
    return c;
  }

  /** Opens a connection to the peer: sends SYN and waits in SYN-SENT. */
  static connect(
    localPort: number,
    remotePort: number,
    options: ConnectionOptions,
    hooks: ConnectionHooks,
  ): Connection {
    const c = new Connection(localPort, remotePort, options, hooks);
    c.startSend(options.random.u32());
    c.setState(TcpState.SynSent);
    c.sendSyn();
    return c;
  }

  private negotiate(syn: TcpSegment): void {
    if (syn.windowScale !== undefined) {
      this.sndWscale = syn.windowScale;
      this.rcvWscale = RCV_WSCALE;
    } else {
      this.sndWscale = 0;
      this.rcvWscale = 0;
    }
    this.sndMss = Math.max(64, Math.min(syn.mss ?? 536, this.opts.mss));
    this.sackOk = syn.sackPermitted;
    // burstLimit() is one MSS without TSO, which is NewReno's own default ACK limit.
    this.cc = this.opts.congestion(this.sndMss, this.burstLimit());
  }

  private startSend(iss: number): void {
    this.iss = iss >>> 0;
    this.sndUna = this.iss;
    this.sndNxt = this.iss;
    this.sndMax = this.iss;
    this.sndBufSeq = seqAdd(this.iss, 1);
  }

  private setState(next: TcpState): void {
    this.state = next;
  }

  // ---- Application side --------------------------------------------------------------

  /**
   * Queues data to send. Takes ownership of `data`. Returns false when the caller should wait for
   * onSendSpace. With `more`, the caller expects to send again within this batch: whole segments
   * go at once, and a shorter tail waits for the next send or `flush()` (as Linux's autocorking),
   * so a host socket's 64 KiB reads do not each end in a runt segment.
   */
  send(data: Buffer, more = false): boolean {
    if (this.finQueued || this.closed) return false;
    this.sendBuf.push(data);
    this.transmit(more);
    if (this.tailHeld) this.hooks.requestFlush();
    if (this.sendBuf.length >= this.sndBufSize) {
      this.sendBlocked = true;
      return false;
    }
    return true;
  }

  get sendBuffered(): number {
    return this.sendBuf.length;
  }

  /** Half-closes our side: FIN after all queued data. */
  close(): void {
    if (this.finQueued || this.closed) return;
    if (this.state === TcpState.SynSent) {
      this.terminate("closed");
      return;
    }
    this.finQueued = true;
    this.transmit();
  }

  /** Resets the connection (RST to the peer) and drops it. */
  abort(): void {
    if (this.closed) return;
    // A tail held for more leaves ahead of the reset, as it would have had it gone at once.
    if (this.tailHeld) this.transmit();
    if (this.state !== TcpState.SynSent && this.state !== TcpState.TimeWait) {
      this.emit(this.sndNxt, TCP_RST | TCP_ACK, undefined);
    }
    this.terminate("aborted");
  }

  /**
   * The owner let go of the connection after closing its side: it waits in FIN-WAIT-2 for at
   * most `finWait2TimeoutMs`, and data the peer still sends resets it (nobody would read it).
   */
  orphan(): void {
    if (this.closed || this.orphaned) return;
    this.orphaned = true;
    this.armIdle(this.opts.clock.now());
  }

  /** A larger receive buffer: advertised at once if the window grows noticeably. */
  setReceiveBuffer(bytes: number): void {
    this.rcvBufSize = bytes;
    this.receiveSpaceOpened();
  }

  /** A new send buffer limit; a writer blocked on the old one may go on if the new one has room. */
  setSendBuffer(bytes: number): void {
    this.sndBufSize = bytes;
    if (this.sendBlocked && this.sendBuf.length < bytes / 2 && !this.closed) {
      this.sendBlocked = false;
      this.hooks.onSendSpace();
    }
  }

  /** The writer waits on a full send buffer while the peer's window and cwnd could take more. */
  get sendLimited(): boolean {
    return this.sendBlocked && Math.min(this.sndWnd, this.cc.cwnd) > this.sndBufSize / 2;
  }

  /** The application consumed data: advertise the larger window if it grew noticeably. */
  receiveSpaceOpened(): void {
    if (!canReceive(this.state) || this.closed) return;
    const wnd = this.receiveWindow();
    const advertised = seqDiff(this.rcvAdvertisedEdge, this.rcvNxt);
    if (
      wnd - advertised >= Math.min(2 * this.opts.mss, this.rcvBufSize / 2) ||
      (advertised < this.opts.mss && wnd >= this.opts.mss)
    ) {
      this.sendAck();
    }
  }

  /**
   * Sends a coalesced ACK if one is owed, called by the owner after a batch of segments: at once
   * for two full segments or more, else when our next segment carries it or `delayedAckMs` ends.
   */
  flush(): void {
    if (this.tailHeld) this.transmit();
    if (!this.ackPending || this.closed) return;
    const unacked = seqDiff(this.rcvNxt, this.rcvAcked);
    if (this.opts.delayedAckMs > 0 && unacked > 0 && unacked < 2 * this.opts.mss) {
      this.timers.delayedAck ??= this.opts.clock.now() + this.opts.delayedAckMs;
      return;
    }
    this.sendAck();
  }

  // ---- Segment arrival (RFC 9293 3.10.7) --------------------------------------------

  /** One segment from the peer, at time `now` (the caller's clock: the core reads none for input). */
  onSegment(seg: TcpSegment, now: number): void {
    if (this.closed) return;
    if (this.state === TcpState.SynSent) {
      this.onSegmentSynSent(seg, now);
      return;
    }
    // RFC 9293 3.10.7.4, in its order: sequence number, RST, SYN, ACK, then data and FIN.
    if (this.answeredOutOfTurn(seg, now)) return;
    if (!this.passesSequenceChecks(seg, now)) return;
    if (!this.processAckField(seg, now)) return;
    if (!this.processText(seg)) return;
    this.maybeConsumeFin(now);
    if (this.closed) return;
    this.transmit();
    if (this.ackPending) this.hooks.requestFlush();
    this.armIdle(now);
    this.armKeepAlive(now);
  }

  /** Segments answered before the usual checks: a retransmitted SYN, a FIN in TIME-WAIT. */
  private answeredOutOfTurn(seg: TcpSegment, now: number): boolean {
    // A retransmitted SYN while our SYN-ACK is unanswered: send it again.
    if (
      this.state === TcpState.SynReceived &&
      seg.flags & TCP_SYN &&
      !(seg.flags & TCP_ACK) &&
      seg.seq === this.irs
    ) {
      this.sendSyn();
      return true;
    }
    if (this.state === TcpState.TimeWait && seg.flags & TCP_FIN) {
      // Our last ACK was lost: acknowledge again and restart the 2MSL wait.
      this.timers.timeWait = now + this.opts.timeWaitMs;
      this.sendAck();
      return true;
    }
    return false;
  }

  /** Acceptability, RST and SYN (RFC 9293 3.10.7.4 first to fourth, RFC 5961); false: done with it. */
  private passesSequenceChecks(seg: TcpSegment, now: number): boolean {
    const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & TCP_FIN ? 1 : 0);
    if (!this.acceptable(seg.seq, len)) {
      // With our window closed, a segment at rcvNxt still carries a valid ACK (RFC 9293 3.10.7.4).
      const windowClosed = seqDiff(this.rcvAdvertisedEdge, this.rcvNxt) <= 0;
      if (
        windowClosed &&
        seg.seq === this.rcvNxt &&
        seg.flags & TCP_ACK &&
        !(seg.flags & (TCP_RST | TCP_SYN))
      ) {
        this.processAck(seg, now);
        if (this.closed) return false;
        this.transmit();
      }
      if (!(seg.flags & TCP_RST)) this.sendAck();
      return false;
    }
    if (seg.flags & TCP_RST) {
      // RFC 5961: only an RST at exactly rcvNxt resets; others get a challenge ACK.
      if (seg.seq === this.rcvNxt || this.state === TcpState.SynReceived) this.terminate("reset");
      else this.sendAck();
      return false;
    }
    if (seg.flags & TCP_SYN) {
      this.sendAck(); // challenge ACK (RFC 5961 4.2)
      return false;
    }
    return (seg.flags & TCP_ACK) !== 0;
  }

  /** The ACK field: completes our handshake in SYN-RECEIVED, then acknowledgment and window. */
  private processAckField(seg: TcpSegment, now: number): boolean {
    if (this.state === TcpState.SynReceived) {
      if (!seqGt(seg.ack, this.sndUna) || !seqLe(seg.ack, this.sndMax)) {
        this.emit(seg.ack, TCP_RST, undefined);
        return false;
      }
      this.setState(TcpState.Established);
      this.sndWnd = seg.window << this.sndWscale;
      this.sndWl1 = seg.seq;
      this.sndWl2 = seg.ack;
      this.hooks.onEstablished();
    }
    return this.processAck(seg, now) && !this.closed;
  }

  /** The segment's data and FIN; false when the connection was reset over it. */
  private processText(seg: TcpSegment): boolean {
    if (seg.payload.length > 0 && canReceive(this.state)) {
      if (this.orphaned && seqGt(seqAdd(seg.seq, seg.payload.length), this.rcvNxt)) {
        // New data for a connection nobody reads any more: reset, as Linux does.
        this.abort();
        return false;
      }
      this.receiveData(seg);
    }
    if (seg.flags & TCP_FIN) {
      this.peerFinSeq = seqAdd(seg.seq, seg.payload.length);
      this.ackPending = true;
    }
    return true;
  }

  private onSegmentSynSent(seg: TcpSegment, now: number): void {
    const ackOk = (seg.flags & TCP_ACK) !== 0 && seqGt(seg.ack, this.iss) && seqLe(seg.ack, this.sndMax);
    if (seg.flags & TCP_ACK && !ackOk) {
      if (!(seg.flags & TCP_RST)) this.emit(seg.ack, TCP_RST, undefined);
      return;
    }
    if (seg.flags & TCP_RST) {
      if (ackOk) this.terminate("refused");
      return;
    }
    if (!(seg.flags & TCP_SYN) || !ackOk) return; // simultaneous open is not supported
    this.irs = seg.seq;
    this.rcvNxt = seqAdd(seg.seq, 1);
    this.rcvAdvertisedEdge = seqAdd(this.rcvNxt, Math.min(this.rcvBufSize, 65535));
    this.negotiate(seg);
    this.sndUna = seg.ack;
    this.sndWnd = seg.window; // a SYN's window is never scaled (RFC 7323 2.2)
    this.sndWl1 = seg.seq;
    this.sndWl2 = seg.ack;
    this.timers.rto = undefined;
    this.retransmits = 0;
    this.setState(TcpState.Established);
    this.armKeepAlive(now);
    this.sendAck();
    this.hooks.onEstablished();
    this.transmit();
  }

  /** RFC 9293 3.10.7.4 acceptability test against the window we advertised. */
  private acceptable(seq: number, len: number): boolean {
    const wnd = Math.max(0, seqDiff(this.rcvAdvertisedEdge, this.rcvNxt));
    if (len === 0) {
      if (wnd === 0) return seq === this.rcvNxt;
      return seqGe(seq, this.rcvNxt) && seqLt(seq, seqAdd(this.rcvNxt, wnd));
    }
    if (wnd === 0) return false;
    const end = seqAdd(seq, len - 1);
    const inWindow = (s: number) => seqGe(s, this.rcvNxt) && seqLt(s, seqAdd(this.rcvNxt, wnd));
    return inWindow(seq) || inWindow(end) || (seqLt(seq, this.rcvNxt) && seqGt(end, this.rcvNxt));
  }

  /** Returns false when the segment must be dropped. */
  private processAck(seg: TcpSegment, now: number): boolean {
    const ack = seg.ack;
    if (seqGt(ack, this.sndMax)) {
      this.sendAck(); // acknowledges something we never sent
      return false;
    }
    const window = seg.window << this.sndWscale;
    if (seg.sack && this.sackOk) this.scoreboard.update(seg.sack, ack, this.sndMax);
    if (seqGt(ack, this.sndUna)) {
      const acked = seqDiff(ack, this.sndUna);
      this.onNewAck(ack, acked, now);
    } else if (
      ack === this.sndUna &&
      seg.payload.length === 0 &&
      !(seg.flags & (TCP_FIN | TCP_SYN)) &&
      // Linux's window moves while it queues out-of-order data; SACK blocks mark a duplicate too.
      (window === this.sndWnd || (seg.sack !== undefined && this.sackOk)) &&
      seqGt(this.sndMax, this.sndUna)
    ) {
      this.onDupAck();
    }
    // Window update (RFC 9293 3.10.7.4, SND.WL1/WL2 rule).
    if (seqLt(this.sndWl1, seg.seq) || (this.sndWl1 === seg.seq && seqLe(this.sndWl2, ack))) {
      const opened = this.sndWnd === 0 && window > 0;
      this.sndWnd = window;
      this.sndWl1 = seg.seq;
      this.sndWl2 = ack;
      if (opened) {
        this.timers.persist = undefined;
        this.persistBackoff = 0;
      }
    }
    if (this.sendSpaceDeferred) {
      this.sendSpaceDeferred = false;
      this.hooks.onSendSpace();
    }
    return true;
  }

  private onNewAck(ack: number, acked: number, now: number): void {
    if (this.timed && seqGe(ack, this.timed.seq)) {
      this.rtt.sample(now - this.timed.at);
      this.timed = undefined;
    }
    // Data bytes acknowledged (the SYN and FIN take sequence space but are not in sendBuf).
    if (seqGt(ack, this.sndBufSeq)) {
      const dataAcked = Math.min(seqDiff(ack, this.sndBufSeq), this.sendBuf.length);
      this.sendBuf.consume(dataAcked);
      this.sndBufSeq = seqAdd(this.sndBufSeq, dataAcked);
    }
    this.sndUna = ack;
    if (seqLt(this.sndNxt, ack)) this.sndNxt = ack;
    this.retransmits = 0;
    this.rtt.resetBackoff();

    if (this.cc.recoverySeq !== undefined) {
      if (seqGe(ack, this.cc.recoverySeq)) {
        this.cc.onRecoveryEnd();
        this.dupAcks = 0;
      } else {
        // Partial ACK (RFC 6582): the next hole is lost too; retransmit it at once.
        const board = this.scoreboard;
        if (seqLt(board.highRxt, this.sndUna)) board.highRxt = this.sndUna;
        if (board.highRxt === this.sndUna) this.retransmitFirst();
        this.retransmitNextHole();
        this.cc.onPartialAck(acked);
      }
    } else {
      this.dupAcks = 0;
      this.cc.onAck(acked);
    }
    this.timers.rto = seqGt(this.sndMax, this.sndUna) ? now + this.rtt.rto : undefined;

    const finAcked = this.finSent && ack === this.sndMax;
    if (finAcked) {
      if (this.state === TcpState.FinWait1) {
        this.setState(TcpState.FinWait2);
        this.armIdle(now);
      } else if (this.state === TcpState.Closing) this.enterTimeWait(now);
      else if (this.state === TcpState.LastAck) {
        this.terminate("closed");
        return;
      }
    }
    if (this.sendBlocked && this.sendBuf.length < this.sndBufSize / 2) {
      this.sendBlocked = false;
      this.sendSpaceDeferred = true;
    }
  }

  private onDupAck(): void {
    this.dupAcks++;
    if (this.cc.recoverySeq !== undefined) {
      this.cc.onDupAckInRecovery();
      this.retransmitNextHole();
    } else if (this.lossDetected()) {
      this.recovery.fastRetransmits++;
      this.cc.onFastRetransmit(seqDiff(this.sndMax, this.sndUna), this.sndMax);
      this.timed = undefined;
      this.scoreboard.highRxt = this.sndUna;
      this.retransmitFirst();
    }
  }

  /**
   * Three duplicate ACKs, or as much SACKed data (RFC 6675), or — with too little in flight to
   * ever produce three — one fewer duplicate than segments outstanding (early retransmit, RFC 5827).
   */
  private lossDetected(): boolean {
    if (this.dupAcks >= 3) return true;
    if (this.scoreboard.sackedBytes() >= 3 * this.sndMss) return true;
    // Segments in flight: a FIN that rides on the last one adds a sequence number, not a segment.
    const finInFlight = this.finSent ? 1 : 0;
    const outstanding = Math.ceil((seqDiff(this.sndMax, this.sndUna) - finInFlight) / this.sndMss);
    return (
      outstanding <= 3 &&
      this.dupAcks >= Math.max(1, outstanding - 1) &&
      this.sendBuf.length - seqDiff(this.sndMax, this.sndBufSeq) <= 0
    );
  }

  /**
   * In recovery, resends the next hole below the highest SACKed byte that was not resent yet
   * (a simplified RFC 6675 NextSeg): with several losses in one window, each is repaired in
   * one round trip instead of one per round trip.
   */
  private retransmitNextHole(): void {
    const hole = this.scoreboard.nextHole(this.sndUna);
    if (!hole) return;
    const dataOffset = seqDiff(hole.start, this.sndBufSeq);
    const len = Math.min(this.sndMss, seqDiff(hole.end, hole.start), this.sendBuf.length - dataOffset);
    if (len <= 0) return;
    this.emitData(hole.start, this.sendBuf.views(dataOffset, len), false);
    this.scoreboard.highRxt = seqAdd(hole.start, len);
  }

  /** Resends the segment at sndUna without moving sndNxt. */
  private retransmitFirst(): void {
    const dataOffset = seqDiff(this.sndUna, this.sndBufSeq);
    // Only what was sent before: data never sent waits for the window like any new data.
    const available = Math.min(this.sendBuf.length - dataOffset, seqDiff(this.sndMax, this.sndUna));
    if (available > 0) {
      const len = Math.min(this.sndMss, available);
      this.emitData(this.sndUna, this.sendBuf.views(dataOffset, len), false);
      this.scoreboard.resent(this.sndUna, len);
    } else if (this.finSent) {
      this.emit(this.sndUna, TCP_FIN | TCP_ACK, undefined);
    }
  }

  private receiveData(seg: TcpSegment): void {
    let seq = seg.seq;
    let data = seg.payload;
    // Trim what we already have and what lies beyond the advertised window.
    if (seqLt(seq, this.rcvNxt)) {
      data = data.subarray(seqDiff(this.rcvNxt, seq));
      seq = this.rcvNxt;
    }
    const room = seqDiff(this.rcvAdvertisedEdge, seq);
    if (data.length > room) data = data.subarray(0, Math.max(0, room));
    if (data.length === 0) {
      this.ackPending = true;
      return;
    }
    if (seq === this.rcvNxt) {
      this.rcvNxt = seqAdd(this.rcvNxt, data.length);
      this.hooks.onData(data);
      if (this.assembler.count > 0) {
        for (const part of this.assembler.takeContiguous(this.rcvNxt)) {
          this.rcvNxt = seqAdd(this.rcvNxt, part.length);
          this.hooks.onData(part);
        }
        this.sendAck(); // filling a hole: tell the sender at once
        return;
      }
      this.ackPending = true;
    } else {
      this.assembler.insert(seq, data);
      this.sendAck(); // out of order: an immediate duplicate ACK drives the sender's fast retransmit
    }
  }

  private maybeConsumeFin(now: number): void {
    if (this.peerFinSeq === undefined || this.finReceived || this.peerFinSeq !== this.rcvNxt) return;
    if (!canReceive(this.state)) return;
    this.finReceived = true;
    this.rcvNxt = seqAdd(this.rcvNxt, 1);
    if (this.state === TcpState.Established) {
      // The peer closed first: its FIN waits like data for the delayed ACK, so the FIN of our own
      // that usually follows within it carries the ACK (one frame instead of two, as Linux does).
      this.ackPending = true;
      this.hooks.requestFlush();
      this.setState(TcpState.CloseWait);
      this.hooks.onFin();
      return;
    }
    this.sendAck();
    if (this.state === TcpState.FinWait1) {
      if (this.finSent && this.sndUna === this.sndMax) this.enterTimeWait(now);
      else this.setState(TcpState.Closing);
    } else if (this.state === TcpState.FinWait2) this.enterTimeWait(now);
    this.hooks.onFin();
  }

  private enterTimeWait(now: number): void {
    this.setState(TcpState.TimeWait);
    this.timers.rto = undefined;
    this.timers.persist = undefined;
    this.timers.idle = undefined;
    this.timers.keepAlive = undefined;
    this.timers.timeWait = now + this.opts.timeWaitMs;
    this.sendBuf.clear();
    this.assembler.clear();
    this.hooks.onTimeWait?.();
  }

  // ---- Output -------------------------------------------------------------------------

  /** Sends as much queued data (and the FIN) as the windows allow; `holdTail`: see `send`. */
  private transmit(holdTail = false): void {
    this.tailHeld = false;
    if (this.closed) return;
    const s = this.state;
    if (
      s !== TcpState.Established &&
      s !== TcpState.CloseWait &&
      s !== TcpState.FinWait1 &&
      s !== TcpState.Closing &&
      s !== TcpState.LastAck
    ) {
      return;
    }
    const now = this.opts.clock.now();
    for (;;) {
      const inflight = seqDiff(this.sndNxt, this.sndUna);
      // Limited transmit (RFC 3042): each of the first two duplicate ACKs lets one new segment out.
      const limited = this.cc.recoverySeq === undefined ? Math.min(this.dupAcks, 2) * this.sndMss : 0;
      const window = Math.min(this.sndWnd, this.cc.cwnd + limited);
      const dataOffset = seqDiff(this.sndNxt, this.sndBufSeq);
      const available = this.sendBuf.length - dataOffset;
      if (available > 0) {
        const room = window - inflight;
        if (room <= 0) break;
        let len = Math.min(this.burstLimit(), available, room);
        // Avoid silly-window segments unless it is all we have (RFC 9293 3.8.6.2.1).
        if (len < this.sndMss && len < available && inflight > 0) break;
        // A super-segment (TSO) is whole segments unless it ends the data.
        if (len > this.sndMss && len < available) len -= len % this.sndMss;
        else if (holdTail && len === available && !this.finQueued) {
          if (len < this.sndMss) {
            this.tailHeld = true;
            break;
          }
          if (len > this.sndMss && len % this.sndMss !== 0) {
            this.tailHeld = true;
            len -= len % this.sndMss;
          }
        }
        const seq = this.sndNxt;
        const end = seqAdd(seq, len);
        // The FIN rides on the segment that ends the data (as Linux's does), and again on a resend
        // of that segment: once sent, the FIN lies past all data, so `end` is below sndMax then.
        const fin = len === available && this.finQueued;
        if (fin) this.markFinSent();
        this.emitData(seq, this.sendBuf.views(dataOffset, len), len === available, fin);
        this.sndNxt = fin ? seqAdd(end, 1) : end;
        if (seqGt(this.sndNxt, this.sndMax)) {
          this.sndMax = this.sndNxt;
          if (!this.timed) this.timed = { seq: this.sndNxt, at: now };
        }
        if (this.timers.rto === undefined) this.timers.rto = now + this.rtt.rto;
        continue;
      }
      if (this.finQueued && available === 0 && !(this.finSent && seqGe(this.sndNxt, this.sndMax))) {
        this.markFinSent();
        this.emit(this.sndNxt, TCP_FIN | TCP_ACK, undefined);
        this.sndNxt = seqAdd(this.sndNxt, 1);
        if (seqGt(this.sndNxt, this.sndMax)) this.sndMax = this.sndNxt;
        if (this.timers.rto === undefined) this.timers.rto = now + this.rtt.rto;
      }
      break;
    }
    // Zero window with data waiting and nothing in flight: probe until it opens.
    const waiting = this.sendBuf.length - seqDiff(this.sndNxt, this.sndBufSeq) > 0;
    if (this.sndWnd === 0 && waiting && this.sndNxt === this.sndUna) {
      if (this.timers.persist === undefined) this.timers.persist = now + this.persistInterval();
    } else {
      this.timers.persist = undefined;
    }
  }

  /** Our FIN leaves (the first time: the state moves on). */
  private markFinSent(): void {
    if (this.finSent) return;
    this.finSent = true;
    if (this.state === TcpState.Established) this.setState(TcpState.FinWait1);
    else if (this.state === TcpState.CloseWait) this.setState(TcpState.LastAck);
  }

  private persistInterval(): number {
    return Math.min(Math.max(this.rtt.rto, 200) * 2 ** this.persistBackoff, 60_000);
  }

  private emitData(seq: number, payload: Payload, push: boolean, fin = false): void {
    if (seqLt(seq, this.sndMax)) this.recovery.segmentsRetransmitted++;
    const segmentSize = payloadLength(payload) > this.sndMss ? this.sndMss : undefined;
    this.emit(seq, TCP_ACK | (push ? TCP_PSH : 0) | (fin ? TCP_FIN : 0), payload, segmentSize);
  }

  /** Most payload one data segment may carry: one MSS, or whole MSSes up to maxBurstSegment. */
  private burstLimit(): number {
    const burst = this.opts.maxBurstSegment;
    if (!(burst > this.sndMss)) return this.sndMss; // also when passed as undefined
    return burst - (burst % this.sndMss);
  }

  /** A pure ACK carries sndMax: after a timeout rewinds sndNxt, an older number would fall
   * outside the peer's window and the peer would drop the ACK unread. */
  private sendAck(): void {
    this.emit(this.sndMax, TCP_ACK, undefined);
  }

  private sendSyn(): void {
    const synAck = this.state === TcpState.SynReceived;
    const fields: TcpEmitFields = {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq: this.iss,
      ack: synAck ? this.rcvNxt : 0,
      flags: TCP_SYN | (synAck ? TCP_ACK : 0),
      window: Math.min(this.rcvBufSize, 65535),
      mss: this.opts.mss,
    };
    // In a SYN-ACK, options are only echoed when the peer offered them.
    if (!synAck || this.rcvWscale > 0) fields.windowScale = RCV_WSCALE;
    if (!synAck || this.sackOk) fields.sackPermitted = true;
    this.rcvAdvertisedEdge = seqAdd(this.rcvNxt, fields.window);
    if (synAck) this.rcvAcked = this.rcvNxt;
    this.hooks.output(fields, undefined);
    if (seqGe(this.iss, this.sndMax)) this.sndMax = seqAdd(this.iss, 1);
    this.sndNxt = seqAdd(this.iss, 1);
    const now = this.opts.clock.now();
    this.timers.rto = now + this.rtt.rto;
    this.timers.idle = undefined;
  }

  private receiveWindow(): number {
    return Math.max(0, this.rcvBufSize - this.hooks.receiveBacklog() - this.assembler.size);
  }

  private emit(seq: number, flags: number, payload: Payload | undefined, segmentSize?: number): void {
    let window = 0;
    if (flags & TCP_ACK) {
      // Never shrink the right edge we already advertised (RFC 9293 3.8.6.2.2): scaling rounds
      // the promise up, never down, or each ACK would pull the edge back a little more.
      const promised = Math.max(0, seqDiff(this.rcvAdvertisedEdge, this.rcvNxt));
      const unit = 2 ** this.rcvWscale;
      window = Math.min(
        Math.max(this.receiveWindow() >>> this.rcvWscale, Math.ceil(promised / unit)),
        0xffff,
      );
      this.rcvAdvertisedEdge = seqAdd(this.rcvNxt, window << this.rcvWscale);
      this.lastWindow = window;
      this.ackPending = false;
      this.rcvAcked = this.rcvNxt;
      this.timers.delayedAck = undefined;
    }
    const fields: TcpEmitFields = {
      srcPort: this.localPort,
      dstPort: this.remotePort,
      seq,
      ack: flags & TCP_ACK ? this.rcvNxt : 0,
      flags,
      window,
    };
    if (this.sackOk && this.assembler.count > 0 && flags & TCP_ACK) fields.sack = this.assembler.blocks();
    this.hooks.output(fields, payload, segmentSize);
  }

  // ---- Timers -------------------------------------------------------------------------

  /** When `poll` must next run, or undefined when no timer is armed. */
  pollAt(): number | undefined {
    return this.timers.next();
  }

  poll(now: number): void {
    if (this.closed) return;
    if (this.timers.delayedAck !== undefined && now >= this.timers.delayedAck) {
      this.timers.delayedAck = undefined;
      if (this.ackPending) this.sendAck();
    }
    if (this.timers.timeWait !== undefined && now >= this.timers.timeWait) {
      this.terminate("closed");
      return;
    }
    if (this.timers.idle !== undefined && now >= this.timers.idle) {
      this.abort();
      return;
    }
    if (this.timers.rto !== undefined && now >= this.timers.rto) this.onRetransmitTimeout(now);
    if (this.closed) return;
    if (this.timers.keepAlive !== undefined && now >= this.timers.keepAlive) this.onKeepAlive(now);
    if (this.closed) return;
    if (this.timers.persist !== undefined && now >= this.timers.persist) {
      // Zero-window probe: an old sequence number makes the peer answer with its window.
      this.emit(seqAdd(this.sndUna, -1), TCP_ACK, undefined);
      this.persistBackoff++;
      this.timers.persist = now + this.persistInterval();
    }
  }

  /** A keepalive probe: an old sequence number the peer must acknowledge (RFC 9293 3.8.4). */
  private onKeepAlive(now: number): void {
    if (this.keepAliveSent >= this.opts.keepAliveProbes) {
      this.emit(this.sndNxt, TCP_RST | TCP_ACK, undefined);
      this.terminate("timeout");
      return;
    }
    this.keepAliveSent++;
    this.emit(seqAdd(this.sndUna, -1), TCP_ACK, undefined);
    this.timers.keepAlive = now + this.opts.keepAliveIntervalMs;
  }

  private onRetransmitTimeout(now: number): void {
    this.retransmits++;
    this.recovery.timeouts++;
    this.timed = undefined;
    const handshaking = this.state === TcpState.SynSent || this.state === TcpState.SynReceived;
    const limit = handshaking ? this.opts.maxSynRetransmits : this.opts.maxRetransmits;
    if (this.retransmits > limit) {
      if (handshaking) this.terminate("timeout");
      else {
        this.emit(this.sndNxt, TCP_RST | TCP_ACK, undefined);
        this.terminate("timeout");
      }
      return;
    }
    this.rtt.backoff();
    if (handshaking) {
      this.sendSyn();
      return;
    }
    // Go back to the first unacknowledged byte with a window of one segment (RFC 5681 3.1).
    this.cc.onTimeout(seqDiff(this.sndMax, this.sndUna));
    this.dupAcks = 0;
    this.scoreboard.clear();
    this.sndNxt = this.sndUna;
    this.timers.rto = undefined;
    if (this.finSent && seqDiff(this.sndMax, this.sndUna) === 1 && this.sendBuf.length === 0) {
      this.emit(this.sndUna, TCP_FIN | TCP_ACK, undefined);
      this.sndNxt = this.sndMax;
      this.timers.rto = now + this.rtt.rto;
      return;
    }
    this.transmit();
    if (this.timers.rto === undefined && seqGt(this.sndMax, this.sndUna))
      this.timers.rto = now + this.rtt.rto;
  }

  /** Only an orphan waits a bounded time for the peer's FIN (Linux's tcp_fin_timeout). */
  private armIdle(now: number): void {
    if (this.orphaned && this.state === TcpState.FinWait2)
      this.timers.idle = now + this.opts.finWait2TimeoutMs;
  }

  /** Restarts the keepalive countdown: the peer was heard from. */
  private armKeepAlive(now: number): void {
    this.keepAliveSent = 0;
    const idle = this.opts.keepAliveIdleMs;
    const synced =
      this.state !== TcpState.SynSent &&
      this.state !== TcpState.SynReceived &&
      this.state !== TcpState.TimeWait;
    this.timers.keepAlive = idle > 0 && synced ? now + idle : undefined;
  }

  private terminate(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    this.setState(TcpState.Closed);
    this.timers.clear();
    this.sendBuf.clear();
    this.assembler.clear();
    this.hooks.onClose(reason);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get isTimeWait(): boolean {
    return this.state === TcpState.TimeWait && !this.closed;
  }

  /** In TIME-WAIT, what answering old duplicates takes: see `timeWaitAnswer`. */
  timeWaitRecord(): TimeWaitRecord | undefined {
    if (!this.isTimeWait) return undefined;
    return {
      seq: this.sndMax,
      ack: this.rcvNxt,
      window: this.lastWindow,
      windowBytes: this.lastWindow * 2 ** this.rcvWscale,
    };
  }

  /**
   * Ends a connection in TIME-WAIT whose owner keeps its `timeWaitRecord` for the rest of the
   * wait: nothing is sent, and `onClose` reports a normal close.
   */
  retire(): void {
    if (this.isTimeWait) this.terminate("closed");
  }

  /** Our side has ended: the connection finishes by itself (the FIN is resent until acknowledged). */
  get isClosing(): boolean {
    return this.finQueued && !this.closed;
  }

  /** Counters and state for diagnostics. */
  info(): {
    state: TcpState;
    sendBuffered: number;
    outOfOrder: number;
    cwnd: number;
    rto: number;
    srtt?: number;
  } {
    return {
      state: this.state,
      sendBuffered: this.sendBuf.length,
      outOfOrder: this.assembler.size,
      cwnd: this.cc.cwnd,
      rto: this.rtt.rto,
      srtt: this.rtt.smoothed,
    };
  }
}
