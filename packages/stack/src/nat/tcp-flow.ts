/**
 * One TCP flow between a guest and the stack: its connection, the stream user code reads and
 * writes (flows served in-process or dialled), or for a NATed flow the host socket joined to the
 * connection directly, the batch cork, the timer and the buffer grants. Every error path is wired when the flow is born, and every way into the flow
 * (segments, timers, flushes, socket and stream events) runs under one guard: an unexpected
 * exception closes this flow, is counted and logged, and never reaches the process.
 */
import net from "node:net";
import type { Clock, FlowInfo, Logger, SlabPool, StreamHandler, Timer } from "@desktopd/core";
import type { DropCounters } from "../counters.js";
import { DialError } from "../errors.js";
import type { FlowOwner, IpOutput } from "../iface/ip-output.js";
import {
  type CloseReason,
  Connection,
  type ConnectionHooks,
  type ConnectionOptions,
} from "../tcp/connection.js";
import { closeError, type StreamOwner, TcpStream } from "../tcp/stream.js";
import type { TimeWaitRecord } from "../tcp/time-wait.js";
import { formatEndpoint, type IpAddr } from "../wire/ip-addr.js";
import type { Payload } from "../wire/payload.js";
import { resetFor, type TcpEmitFields, type TcpSegment } from "../wire/tcp.js";
import { ackNow, prepareAckNow } from "./ack-now.js";
import type { BufferBudget } from "./budget.js";

export interface FlowIds {
  key: string;
  guestIp: IpAddr;
  guestPort: number;
  /** The stack's side: the address and port the guest talks to. */
  localIp: IpAddr;
  localPort: number;
  /** Whose shares and buffer budget the flow is charged to (see `FlowOwner`). */
  owner: FlowOwner;
}

/** Receive and send buffer bytes granted from the budget. */
export interface Grants {
  rx: number;
  tx: number;
}

export interface TcpCounters {
  /** Retransmission timeouts, fast retransmits and resent segments (closed and open connections). */
  timeouts: number;
  fastRetransmits: number;
  segmentsRetransmitted: number;
  opened: number;
  closed: number;
  refused: number;
  reset: number;
  timedOut: number;
  /** TIME-WAIT connections freed early: over `maxTimeWait`, or the 4-tuple reused. */
  timeWaitReclaimed: number;
  /** Flows closed because handling them threw: a bug, logged with its stack. */
  internalErrors: number;
}

/** What a flow needs from its table. */
export interface TcpFlowContext {
  readonly out: IpOutput;
  readonly clock: Clock;
  readonly log: Logger;
  readonly drops: DropCounters;
  readonly counters: TcpCounters;
  readonly budget: BufferBudget;
  /** Host reads are copied here (see SlabPool); the connection releases them once acknowledged. */
  readonly readPool: SlabPool;
  /** The guest's data to the host socket is copied here; given back once the socket wrote it. */
  readonly writePool: SlabPool;
  /** Largest grant a flow may grow to, each way. */
  readonly maxBuffer: number;
  readonly connectTimeoutMs: number;
  /** Host sockets' keepalive delay (0: off). */
  readonly hostKeepAliveMs: number;
  connectionOptions(grants: Grants, ids: FlowIds): ConnectionOptions;
  /** Marks the flow for the end-of-batch flush (coalesced ACKs, uncork, timer). */
  touch(flow: TcpFlow): void;
  /** The flow is gone (called once): the table forgets it. */
  released(flow: TcpFlow): void;
  /** A NAT flow's host connect ended, either way (called once): it leaves the SYN backlog. */
  connectSettled(flow: TcpFlow): void;
  /**
   * The flow's connection is in TIME-WAIT and has sent its last ACK: the table keeps `record`
   * for the rest of the wait and retires the flow.
   */
  retire(flow: TcpFlow, record: TimeWaitRecord): void;
}

/** Error code of a pending host connect the guest reset: nothing is sent back. */
const GUEST_RESET = "ERR_DESKTOPD_GUEST_RESET";
/** Receive autotuning measures what a flow moved within this long (a local round trip is far shorter). */
const GROWTH_PERIOD_MS = 100;
/** A NAT flow's host socket gets keepalive once the flow has lived this long. */
const HOST_KEEPALIVE_AFTER_MS = 1000;

/** A larger write buffer lets one writev carry a whole batch of guest segments. */
const HOST_WRITE_BUFFER = 1024 * 1024;
/**
 * Every NAT host socket reads into this one buffer: libuv hands each read to its callback before
 * the next, and the callback copies the bytes into the flow's read pool at once. Idle sockets
 * hold no read memory at all.
 */
const HOST_READ_LANDING = Buffer.allocUnsafeSlow(64 * 1024);
/** Node's socket reads, and ours, are at most this large: a full one means the socket may hold more. */
const FULL_READ = 64 * 1024;

type Kind = "nat" | "handled" | "dialled";

export class TcpFlow implements ConnectionHooks, StreamOwner {
  conn: Connection | undefined;
  stream: TcpStream | undefined;
  private socket: net.Socket | undefined;
  /** NAT: the host connect is in progress; the guest's SYN is not answered yet. */
  connecting = false;
  /** When the host socket's keepalive is due to be switched on (NAT flows). */
  private hostKeepAliveAt: number | undefined;
  /** NAT: reopens the window once a large backlog's write has reached the kernel. */
  private hostWrote: (() => void) | undefined;
  /** NAT: the host socket's reads are stopped until the connection's send buffer has room. */
  private hostPaused = false;
  /** Bytes the guest sent on this flow, and bytes the flow sent to it. */
  bytesFromGuest = 0;
  bytesToGuest = 0;
  /** Counted against its guest's share of the table (guest-initiated flows). */
  countedInShare = false;
  private corked = false;
  private timer: Timer | undefined;
  private timerAt: number | undefined;
  private connectTimer: Timer | undefined;
  private released = false;
  /** Receive autotuning: bytes from the guest since the last flush, and in the current period. */
  private rxSinceFlush = 0;
  private rxInPeriod = 0;
  private rxPeriodStart = 0;
  /** Dialled: settles the caller's promise once. */
  private settle: ((error?: Error) => void) | undefined;
  private handler: StreamHandler | undefined;
  private info: FlowInfo | undefined;
  /** Who handled it, for flow listings: "nat", "dial", or the name a policy decision gave. */
  service: string;
  /** The stack's clock at birth, and at the guest's last segment (data or ACK of ours). */
  readonly openedAt: number;
  lastActive: number;

  private constructor(
    private readonly ctx: TcpFlowContext,
    readonly ids: FlowIds,
    private readonly grants: Grants,
    readonly kind: Kind,
  ) {
    this.openedAt = ctx.clock.now();
    this.lastActive = this.openedAt;
    this.service = kind === "nat" ? "nat" : kind === "dialled" ? "dial" : "handler";
  }

  // ---- Birth ---------------------------------------------------------------------------

  /** A guest SYN NATed to `host:port`: the host is connected first, the guest answered after. */
  static nat(
    ctx: TcpFlowContext,
    ids: FlowIds,
    grants: Grants,
    syn: TcpSegment,
    icmpQuote: Buffer,
    host: string,
    port: number,
  ): TcpFlow {
    const flow = new TcpFlow(ctx, ids, grants, "nat");
    flow.connecting = true;
    flow.guard(() => flow.connectHost(syn, icmpQuote, host, port));
    return flow;
  }

  /** A guest SYN served in-process: the handler gets the stream once the handshake completes. */
  static handled(
    ctx: TcpFlowContext,
    ids: FlowIds,
    grants: Grants,
    syn: TcpSegment,
    handler: StreamHandler,
    info: FlowInfo,
  ): TcpFlow {
    const flow = new TcpFlow(ctx, ids, grants, "handled");
    flow.handler = handler;
    flow.info = info;
    flow.guard(() => flow.accept(syn));
    return flow;
  }

  /** A connection into the guest; resolves once established, rejects with DialError. */
  static dial(
    ctx: TcpFlowContext,
    ids: FlowIds,
    grants: Grants,
    timeoutMs: number,
  ): { flow: TcpFlow; established: Promise<TcpStream> } {
    const flow = new TcpFlow(ctx, ids, grants, "dialled");
    const established = new Promise<TcpStream>((resolve, reject) => {
      const timer = ctx.clock.setTimer(
        () =>
          flow.guard(() =>
            flow.abort(
              new DialError("timeout", `connect to ${formatEndpoint(ids.guestIp, ids.guestPort)} timed out`),
            ),
          ),
        timeoutMs,
      );
      flow.settle = (error) => {
        flow.settle = undefined;
        timer.cancel();
        if (error) reject(error);
        else resolve(flow.stream!);
      };
      flow.guard(() => {
        flow.openStream();
        flow.conn = Connection.connect(
          ids.localPort,
          ids.guestPort,
          ctx.connectionOptions(grants, ids),
          flow,
        );
        flow.started();
      });
    });
    return { flow, established };
  }

  private connectHost(syn: TcpSegment, icmpQuote: Buffer, host: string, port: number): void {
    const socket = new net.Socket({
      allowHalfOpen: true,
      writableHighWaterMark: HOST_WRITE_BUFFER,
      onread: {
        buffer: HOST_READ_LANDING,
        callback: (n: number, landing: Buffer) => this.fromHost(n, landing),
      },
    } as net.SocketConstructorOpts);
    this.socket = socket;
    // Every event the socket can emit is handled before connect() may emit one.
    socket.on("error", (err: NodeJS.ErrnoException) =>
      this.guard(() => this.onSocketError(err, syn, icmpQuote)),
    );
    socket.once("connect", () => this.guard(() => this.onHostConnected(syn)));
    this.connectTimer = this.ctx.clock.setTimer(
      () =>
        this.guard(() =>
          socket.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })),
        ),
      this.ctx.connectTimeoutMs,
    );
    socket.connect({ host, port, noDelay: true });
  }

  private onHostConnected(syn: TcpSegment): void {
    this.endConnecting();
    const socket = this.socket!;
    if (this.released) {
      socket.destroy();
      return;
    }
    // Keepalive costs three setsockopt calls: only connections that live a while get it.
    if (this.ctx.hostKeepAliveMs > 0) this.hostKeepAliveAt = this.ctx.clock.now() + HOST_KEEPALIVE_AFTER_MS;
    this.accept(syn);
    this.bridge(socket);
  }

  private onSocketError(err: NodeJS.ErrnoException, syn: TcpSegment, icmpQuote: Buffer): void {
    if (!this.connecting) {
      // The host side failed or was reset: reset the guest side too.
      this.ctx.log.debug({ err: err.code ?? err.message, flow: this.describe() }, "host socket failed");
      if (this.conn && !this.conn.isClosed) this.conn.abort();
      return;
    }
    this.endConnecting();
    this.release();
    if (err.code === GUEST_RESET) return;
    this.ctx.log.debug({ err: err.code ?? err.message, flow: this.describe() }, "host connect failed");
    const { ids, ctx } = this;
    if (err.code === "ECONNREFUSED" || err.code === "EMFILE" || err.code === "ENFILE") {
      // Out of descriptors is refused too: the guest learns at once, and tries again later.
      if (err.code !== "ECONNREFUSED") ctx.drops.count("tcp-host-no-fd");
      ctx.counters.refused++;
      ctx.out.sendTcp(ids.localIp, ids.guestIp, resetFor(syn), undefined);
      return;
    }
    ctx.counters.timedOut++;
    const why =
      err.code === "ETIMEDOUT" || err.code === "EHOSTUNREACH"
        ? "host"
        : err.code === "ENETUNREACH"
          ? "net"
          : "port";
    ctx.out.sendUnreachable(ids.localIp, ids.guestIp, why, icmpQuote);
  }

  private endConnecting(): void {
    this.connectTimer?.cancel();
    if (!this.connecting) return;
    this.connecting = false;
    this.ctx.connectSettled(this);
  }

  /** The guest reset its SYN while the host connect was pending. */
  guestResetWhileConnecting(): void {
    this.guard(() => this.socket?.destroy(Object.assign(new Error("guest reset"), { code: GUEST_RESET })));
  }

  /** Creates the connection (and the stream, unless NATed) for a guest SYN, and answers SYN-ACK. */
  private accept(syn: TcpSegment): void {
    if (this.kind !== "nat") this.openStream();
    this.conn = Connection.accept(syn, this.ctx.connectionOptions(this.grants, this.ids), this);
    this.started();
  }

  private openStream(): void {
    const stream = new TcpStream(this, this.ctx.maxBuffer);
    this.stream = stream;
    // Wired at birth: an error before user code listens must not end the process.
    stream.on("error", (err) => this.guard(() => this.onStreamError(err)));
  }

  private started(): void {
    this.ctx.counters.opened++;
    this.ctx.touch(this);
  }

  /**
   * Host socket ⇄ guest connection, joined directly: no stream object between them.
   * - Towards the host: in-order data is written to the socket (one writev per batch, see
   *   `onData`); what the socket has not sent yet shrinks the window (`receiveBacklog`), and its
   *   'drain' reopens it. The guest's FIN ends the socket's writing side.
   * - Towards the guest: reads arrive through `fromHost` (the socket's `onread`); a full send
   *   buffer stops reading until `onSendSpace`. The host's FIN closes our side after the data.
   * - A failure either side resets the other: see `onSocketError` and `onClose`.
   */
  private bridge(socket: net.Socket): void {
    socket.on("end", () => this.guard(() => this.end()));
    socket.on("drain", () => this.guard(() => this.conn?.receiveSpaceOpened()));
  }

  /** One read from the host socket, `n` bytes in the shared landing buffer; false pauses reading. */
  private fromHost(n: number, landing: Buffer): boolean {
    let more = false;
    this.guard(() => {
      const accepted = this.queue(this.ctx.readPool.copy(landing.subarray(0, n)));
      if (accepted === true) more = true;
      else if (accepted === false) {
        this.hostPaused = true;
        // Loaded at the first stop, in the background: until then the held ACK waits for a read.
        void prepareAckNow();
      }
    });
    return more;
  }

  /** Tears the host socket down after the guest side ended: gracefully only for a clean close. */
  private closeHost(reason: CloseReason): void {
    const socket = this.socket;
    if (!socket || socket.destroyed) return;
    if (reason === "closed") {
      if (!socket.writableEnded) socket.end();
      return;
    }
    // libuv refuses a reset once our FIN is queued (uv_tcp_close_reset after uv_shutdown), and
    // the handle would then stay open: a plain destroy is all that is left. A connect still in
    // progress would only be reset once it completed.
    if (socket.writableEnded || socket.connecting) socket.destroy();
    else socket.resetAndDestroy();
  }

  private onStreamError(err: Error): void {
    this.settle?.(err);
  }

  // ---- Input from the table --------------------------------------------------------------

  onSegment(seg: TcpSegment): void {
    this.guard(() => {
      const now = this.ctx.clock.now();
      this.lastActive = now;
      this.conn?.onSegment(seg, now);
      if (!this.released) this.ctx.touch(this);
    });
  }

  /** End of a batch: one writev to the host, coalesced ACKs, grants grown, timer re-armed. */
  flush(): void {
    this.guard(() => {
      this.uncork();
      const conn = this.conn;
      if (!conn || conn.isClosed) return;
      conn.flush();
      // The end of the batch that took it to TIME-WAIT: its last ACK is out, a record suffices.
      const record = conn.timeWaitRecord();
      if (record) {
        this.ctx.retire(this, record);
        return;
      }
      // While reads are stopped the kernel holds back the ACK of what it still receives.
      if (this.hostPaused && this.socket) ackNow(this.socket);
      this.growGrants(conn);
      this.armTimer(conn);
    });
  }

  /**
   * Doubles a grant that limited the flow, as far as the budget allows (receive/send autotuning,
   * after Linux's tcp_rcv_space_adjust): a whole receive grant delivered within one measuring
   * period while the host keeps up means the window, not the host, sets the pace.
   */
  private growGrants(conn: Connection): void {
    const { budget, maxBuffer, clock } = this.ctx;
    const guest = this.ids.owner;
    const now = clock.now();
    if (now - this.rxPeriodStart > GROWTH_PERIOD_MS) {
      this.rxPeriodStart = now;
      this.rxInPeriod = this.rxSinceFlush;
    } else this.rxInPeriod += this.rxSinceFlush;
    this.rxSinceFlush = 0;
    if (
      this.rxInPeriod >= this.grants.rx &&
      this.grants.rx < maxBuffer &&
      this.receiveBacklog() < this.grants.rx / 2
    ) {
      const extra = budget.take(guest, Math.min(this.grants.rx, maxBuffer - this.grants.rx), 1);
      if (extra > 0) {
        this.grants.rx += extra;
        conn.setReceiveBuffer(this.grants.rx);
        this.rxInPeriod = 0;
        this.rxPeriodStart = now;
      }
    }
    if (conn.sendLimited && this.grants.tx < maxBuffer) {
      const extra = budget.take(guest, Math.min(this.grants.tx, maxBuffer - this.grants.tx), 1);
      if (extra > 0) {
        this.grants.tx += extra;
        conn.setSendBuffer(this.grants.tx);
      }
    }
  }

  /** Lazily armed: the timer may fire early, then `poll` does nothing and it is re-armed. */
  private armTimer(conn: Connection): void {
    const keepAliveAt = this.hostKeepAliveAt;
    const connAt = conn.pollAt();
    const at =
      keepAliveAt === undefined || (connAt !== undefined && connAt < keepAliveAt) ? connAt : keepAliveAt;
    if (at === undefined) return;
    if (this.timer && this.timerAt !== undefined && this.timerAt <= at) return;
    this.timer?.cancel();
    const { clock } = this.ctx;
    this.timerAt = at;
    this.timer = clock.setTimer(
      () =>
        this.guard(() => {
          this.timer = undefined;
          this.timerAt = undefined;
          const now = clock.now();
          if (this.hostKeepAliveAt !== undefined && now >= this.hostKeepAliveAt) {
            this.hostKeepAliveAt = undefined;
            this.socket?.setKeepAlive(true, this.ctx.hostKeepAliveMs);
          }
          conn.poll(now);
          if (!this.released) this.ctx.touch(this);
        }),
      Math.max(0, at - clock.now()) + 1,
    );
  }

  private uncork(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket?.uncork();
  }

  // ---- ConnectionHooks -------------------------------------------------------------------

  output(fields: TcpEmitFields, payload: Payload | undefined, segmentSize?: number): void {
    this.ctx.out.sendTcp(this.ids.localIp, this.ids.guestIp, fields, payload, segmentSize);
  }

  onData(data: Buffer): void {
    // Segments of one batch go to the host socket in a single writev at flush time.
    if (this.socket && !this.corked) {
      this.socket.cork();
      this.corked = true;
      this.ctx.touch(this);
    }
    this.rxSinceFlush += data.length;
    this.bytesFromGuest += data.length;
    // `data` may lie in a frame the link lends (see FrameMeta.lent): what is kept is a copy.
    if (this.kind !== "nat") this.stream?.deliver(Buffer.from(data));
    else if (this.socket && !this.socket.destroyed) {
      const pool = this.ctx.writePool;
      const chunk = pool.copy(data);
      // A backlog large enough to have narrowed the window: once this write reaches the kernel,
      // the window may open again ('drain' comes only past the socket's 1 MiB mark).
      if (this.socket.writableLength + data.length > this.grants.rx / 2) {
        this.hostWrote ??= () => this.guard(() => this.conn?.receiveSpaceOpened());
        const reopen = this.hostWrote;
        this.socket.write(chunk, () => {
          pool.release(chunk);
          reopen();
        });
      } else this.socket.write(chunk, () => pool.release(chunk));
    }
  }

  onEstablished(): void {
    if (this.kind === "dialled") this.settle?.();
    else if (this.kind === "handled") {
      // Handed over after this batch: the handler never runs inside the state machine, and a
      // flow reset in the same batch never reaches it.
      queueMicrotask(() =>
        this.guard(() => {
          const stream = this.stream;
          if (!stream || stream.destroyed || this.released) return;
          this.handler!(stream, this.info!);
        }),
      );
    }
  }

  onFin(): void {
    if (this.kind !== "nat") this.stream?.peerFinished();
    // Ends the socket's writing side after what it still holds (end() uncorks).
    else if (this.socket && !this.socket.destroyed) this.socket.end();
  }

  onSendSpace(): void {
    if (this.kind !== "nat") this.stream?.sendSpace();
    else if (this.hostPaused) {
      this.hostPaused = false;
      this.socket?.resume();
    }
  }

  onClose(reason: CloseReason): void {
    const conn = this.conn!;
    const c = this.ctx.counters;
    c.timeouts += conn.recovery.timeouts;
    c.fastRetransmits += conn.recovery.fastRetransmits;
    c.segmentsRetransmitted += conn.recovery.segmentsRetransmitted;
    c.closed++;
    if (reason === "reset") c.reset++;
    else if (reason === "timeout") c.timedOut++;
    else if (reason === "refused") c.refused++;
    if (reason !== "closed" && reason !== "aborted") this.settle?.(closeError(reason));
    this.release();
    if (this.kind === "nat") this.closeHost(reason);
    else this.stream?.connectionClosed(reason);
  }

  receiveBacklog(): number {
    // What the host has not taken yet counts too: the grant bounds every byte held for this flow.
    return (this.stream?.readableLength ?? 0) + (this.socket?.writableLength ?? 0);
  }

  requestFlush(): void {
    this.ctx.touch(this);
  }

  onTimeWait(): void {
    // Both sides are done: the host side ends now, and the flush retires the flow (see retire).
    this.uncork();
    if (this.kind === "nat") this.closeHost("closed");
    else this.stream?.connectionClosed("closed");
    this.stream = undefined;
    this.socket = undefined;
    this.giveBackGrants();
    this.ctx.touch(this);
  }

  // ---- StreamOwner -----------------------------------------------------------------------

  send(chunk: Buffer): boolean | "closed" {
    // A writer's buffers are copied into the read pool: held until the guest acknowledges them,
    // Node's own would outlive a young-generation collection, and V8 counts their bytes as old
    // space, which at gigabits per second means a mark-compact every few milliseconds.
    if (!this.conn || this.conn.isClosed) return "closed";
    // What a writer writes within one turn of the event loop leaves together at the flush (as
    // Linux's autocorking): an HTTP answer's head, body and FIN in one segment, not three.
    return this.queue(this.ctx.readPool.copy(chunk), true);
  }

  /**
   * Queues data for the guest; the connection owns `chunk` from now on. With `more`, a tail
   * shorter than a segment waits for the next chunk or the flush.
   */
  private queue(chunk: Buffer, more = chunk.length >= FULL_READ): boolean | "closed" {
    const conn = this.conn;
    if (!conn || conn.isClosed) return "closed";
    this.bytesToGuest += chunk.length;
    // The flush arms the retransmission timer for what leaves now (and sends a held tail).
    this.ctx.touch(this);
    // By default, a chunk as large as a socket read may have more behind it in this batch: its
    // short tail waits for the next chunk or the flush. A smaller one ended its read: it all goes now.
    return conn.send(chunk, more);
  }

  end(): void {
    this.conn?.close();
    if (!this.released) this.ctx.touch(this);
  }

  readSpace(): void {
    this.conn?.receiveSpaceOpened();
  }

  streamDestroyed(error: Error | null, peerEnded: boolean, unread: number): void {
    const conn = this.conn;
    if (!conn || conn.isClosed) return;
    if (!error && conn.isClosing) {
      // Our FIN is queued: after the peer's FIN the connection finishes on its own (a reset would
      // cut its last ACK short); before it, with nothing left unread, it lives on as an orphan.
      if (peerEnded) return;
      if (unread === 0) {
        conn.orphan();
        this.ctx.touch(this);
        return;
      }
    }
    conn.abort();
  }

  // ---- Death -----------------------------------------------------------------------------

  /** Resets the flow (RST to the guest if it got that far) and closes its sockets. */
  abort(error?: Error): void {
    if (error) this.settle?.(error);
    this.connectTimer?.cancel();
    if (this.conn && !this.conn.isClosed) this.conn.abort();
    else this.release();
    if (this.stream && !this.stream.destroyed) this.stream.destroy(error);
    this.closeHost("aborted");
  }

  /** Leaves the table once: timers stop, grants go back. */
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.uncork();
    this.timer?.cancel();
    this.timer = undefined;
    this.endConnecting();
    this.giveBackGrants();
    this.ctx.released(this);
    this.settle?.(new DialError("closed", "connection closed"));
  }

  private giveBackGrants(): void {
    this.ctx.budget.give(this.ids.owner, this.grants.rx + this.grants.tx);
    this.grants.rx = 0;
    this.grants.tx = 0;
  }

  /** Runs `fn`; an exception closes this flow instead of escaping. */
  guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    this.ctx.counters.internalErrors++;
    this.ctx.drops.count("tcp-internal-error");
    this.ctx.log.error(
      { err: (err as Error)?.stack ?? String(err), flow: this.describe() },
      "tcp flow failed; closed it",
    );
    for (const step of [
      () => this.abort(new DialError("closed", "internal error")),
      () => this.release(),
      () => this.stream?.destroy(),
      () => this.socket?.destroy(),
    ]) {
      try {
        step();
      } catch {
        // Best effort: the flow is going away whatever its parts do.
      }
    }
  }

  get isReleased(): boolean {
    return this.released;
  }

  describe(): string {
    const { guestIp, guestPort, localIp, localPort } = this.ids;
    return `${formatEndpoint(guestIp, guestPort)} ${this.kind} ${formatEndpoint(localIp, localPort)}`;
  }
}
