import net from "node:net";
import type { Clock, Random } from "../clock.js";
import type { NetworkConfig } from "../config.js";
import type { DropCounters, FlowStats } from "../counters.js";
import { DialError } from "../errors.js";
import type { IpOutput } from "../iface/ip-output.js";
import type { Logger } from "../logger.js";
import { defaultDecision, type FlowInfo, type FlowPolicy, type TcpDecision } from "../policy.js";
import { type CloseReason, Connection, type ConnectionOptions } from "../tcp/connection.js";
import { TcpStream } from "../tcp/stream.js";
import { ipv4ToString } from "../wire/address.js";
import { ICMP_CODE_HOST_UNREACHABLE, ICMP_CODE_PORT_UNREACHABLE } from "../wire/icmpv4.js";
import { type Ipv4Packet, icmpQuote } from "../wire/ipv4.js";
import { TCP_ACK, TCP_RST, TCP_SYN, type TcpEmitFields, type TcpSegment } from "../wire/tcp.js";
import { hostTarget } from "./host-map.js";

export interface TcpLayerOptions {
  /** Most connections at once (established and pending). */
  maxConnections?: number;
  /** Most host connects in progress at once: bounds a SYN flood. */
  maxPendingConnects?: number;
  /** Host connect timeout before the guest gets an ICMP unreachable. */
  connectTimeoutMs?: number;
  receiveBuffer?: number;
  sendBuffer?: number;
  timeWaitMs?: number;
  /**
   * Most connections kept in TIME-WAIT (ours closed first); beyond, and whenever the table is
   * full, the oldest is freed (default 4096) — as Linux bounds its TIME-WAIT buckets.
   */
  maxTimeWait?: number;
}

interface Entry {
  key: string;
  guestIp: number;
  guestPort: number;
  localIp: number;
  localPort: number;
  conn?: Connection;
  stream?: TcpStream;
  /** Host socket being connected (SYN seen, SYN-ACK not sent yet). */
  pendingSocket?: net.Socket;
  /** Host socket of a NATed flow; corked while a batch of guest segments is processed. */
  socket?: net.Socket;
  corked?: boolean;
  timer?: NodeJS.Timeout;
  timerAt?: number;
}

/** Error code of a pending host connect the guest reset: nothing is sent back. */
const GUEST_RESET = "ERR_DESKTOPD_GUEST_RESET";

const flowKey = (guestIp: number, guestPort: number, localIp: number, localPort: number) =>
  `${guestIp}:${guestPort}>${localIp}:${localPort}`;

export interface TcpLayerCounters {
  /** Retransmission timeouts, fast retransmits and resent segments, summed over closed connections. */
  timeouts: number;
  fastRetransmits: number;
  segmentsRetransmitted: number;
  opened: number;
  closed: number;
  refused: number;
  reset: number;
  timedOut: number;
  /** TIME-WAIT connections freed early: table full, over `maxTimeWait`, or the 4-tuple reused. */
  timeWaitReclaimed: number;
}

/**
 * The stack's TCP: a table of connections between guests and the stack, each bound to
 * a host socket (NAT), an in-process handler, or a caller that dialled into the guest.
 */
export class TcpLayer {
  private readonly table = new Map<string, Entry>();
  private pending = 0;
  private readonly toFlush = new Set<Entry>();
  private flushScheduled = false;
  readonly counters: TcpLayerCounters = {
    timeouts: 0,
    fastRetransmits: 0,
    segmentsRetransmitted: 0,
    opened: 0,
    closed: 0,
    refused: 0,
    reset: 0,
    timedOut: 0,
    timeWaitReclaimed: 0,
  };
  /** Connections in TIME-WAIT, oldest first. */
  private readonly timeWait = new Set<Entry>();
  private readonly opts: Required<TcpLayerOptions>;
  private nextEphemeral = 49152;
  private closing = false;
  /**
   * Largest payload one emitted segment may carry when the link does TCP segmentation offload;
   * undefined (no TSO): one MSS. Applies to connections opened after it is set.
   */
  maxBurstSegment: number | undefined;

  constructor(
    private readonly cfg: NetworkConfig,
    private readonly out: IpOutput,
    private readonly drops: DropCounters,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly log: Logger,
    private readonly policy: FlowPolicy | undefined,
    options: TcpLayerOptions = {},
  ) {
    this.opts = {
      maxConnections: 16384,
      maxPendingConnects: 1024,
      connectTimeoutMs: 30_000,
      receiveBuffer: 4 * 1024 * 1024,
      sendBuffer: 4 * 1024 * 1024,
      timeWaitMs: 30_000,
      maxTimeWait: 4096,
      ...options,
    };
  }

  get openCount(): number {
    return this.table.size;
  }

  get pendingConnects(): number {
    return this.pending;
  }

  onSegment(ip: Ipv4Packet, seg: TcpSegment): void {
    const key = flowKey(ip.src, seg.srcPort, ip.dst, seg.dstPort);
    const entry = this.table.get(key);
    if (entry?.conn?.isTimeWait && seg.flags & TCP_SYN && !(seg.flags & TCP_ACK)) {
      // The guest reuses the 4-tuple of a connection we closed first: the old one gives way
      // (as Linux lets a new SYN take over a TIME-WAIT socket), and this SYN opens a new one.
      this.counters.timeWaitReclaimed++;
      entry.conn.abort();
    } else if (entry) {
      if (entry.conn) {
        entry.conn.onSegment(seg);
        this.touch(entry);
      } else if (seg.flags & TCP_RST) {
        // The guest gave up before the host answered: the error path frees the entry.
        entry.pendingSocket?.destroy(Object.assign(new Error("guest reset"), { code: GUEST_RESET }));
      }
      return; // retransmitted SYNs while the host connect is pending are absorbed
    }
    if (seg.flags & TCP_RST) return;
    if (!(seg.flags & TCP_SYN) || seg.flags & TCP_ACK) {
      this.drops.count("tcp-no-connection");
      this.sendResetFor(ip, seg);
      return;
    }
    if (this.closing) return;
    if (this.table.size >= this.opts.maxConnections && !this.reclaimTimeWait()) {
      this.drops.count("tcp-table-full");
      this.sendResetFor(ip, seg);
      return;
    }
    const flow: FlowInfo = {
      protocol: "tcp",
      guestIp: ipv4ToString(ip.src),
      guestPort: seg.srcPort,
      dstIp: ipv4ToString(ip.dst),
      dstPort: seg.dstPort,
    };
    const decision = this.decide(ip.dst, flow);
    const base: Entry = {
      key,
      guestIp: ip.src,
      guestPort: seg.srcPort,
      localIp: ip.dst,
      localPort: seg.dstPort,
    };
    if (decision.action === "reject") {
      this.counters.refused++;
      this.sendResetFor(ip, seg);
      return;
    }
    if (decision.action === "handle") {
      const stream = this.establish(base, seg);
      const handler = decision.handler;
      stream.once("ready-established", () => handler(stream, flow));
      return;
    }
    if (this.pending >= this.opts.maxPendingConnects) {
      this.drops.count("tcp-syn-backlog-full");
      return; // the guest retransmits its SYN later
    }
    this.connectHost(
      base,
      ip,
      seg,
      decision.host ?? hostTarget(this.cfg, ip.dst),
      decision.port ?? seg.dstPort,
    );
  }

  private decide(dst: number, flow: FlowInfo): TcpDecision {
    return this.policy?.tcp?.(flow) ?? defaultDecision(dst === this.cfg.gateway);
  }

  /** Opens the host connection first; the guest's handshake completes only if it succeeds. */
  private connectHost(entry: Entry, ip: Ipv4Packet, syn: TcpSegment, host: string, port: number): void {
    this.pending++;
    this.table.set(entry.key, entry);
    // A larger write buffer lets one writev carry a whole batch of guest segments.
    const socketOptions = {
      allowHalfOpen: true,
      writableHighWaterMark: 1024 * 1024,
    } as net.SocketConstructorOpts;
    const socket = new net.Socket(socketOptions).connect({ host, port, noDelay: true });
    entry.pendingSocket = socket;
    socket.setTimeout(this.opts.connectTimeoutMs);
    // The guest's SYN must outlive the frame buffer it came in.
    const original = icmpQuote(ip);
    const synCopy: TcpSegment = { ...syn, payload: Buffer.alloc(0) };
    const settle = () => {
      this.pending--;
      entry.pendingSocket = undefined;
      socket.setTimeout(0);
      socket.removeAllListeners("timeout");
    };
    socket.once("timeout", () =>
      socket.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })),
    );
    socket.once("connect", () => {
      settle();
      socket.removeAllListeners("error");
      if (this.table.get(entry.key) !== entry || this.closing) {
        socket.destroy();
        return;
      }
      entry.socket = socket;
      const stream = this.establish(entry, synCopy);
      this.bridge(stream, socket);
    });
    socket.once("error", (err: NodeJS.ErrnoException) => {
      const wasPending = entry.pendingSocket === socket;
      if (wasPending) settle();
      if (this.table.get(entry.key) === entry && !entry.conn) this.table.delete(entry.key);
      if (!wasPending || err.code === GUEST_RESET) return;
      this.log.debug({ err: err.code ?? err.message, host, port }, "host connect failed");
      if (err.code === "ECONNREFUSED") {
        this.counters.refused++;
        this.sendResetTo(entry, synCopy);
      } else {
        this.counters.timedOut++;
        const code =
          err.code === "ETIMEDOUT" || err.code === "EHOSTUNREACH"
            ? ICMP_CODE_HOST_UNREACHABLE
            : ICMP_CODE_PORT_UNREACHABLE;
        this.out.sendUnreachable(entry.localIp, entry.guestIp, code, original);
      }
    });
  }

  /** Host socket ⇄ guest connection, with backpressure and half-close both ways. */
  private bridge(stream: TcpStream, socket: net.Socket): void {
    stream.pipe(socket);
    socket.pipe(stream);
    socket.on("error", () => {
      // The host side failed or was reset: reset the guest side too.
      if (!stream.destroyed) stream.destroy();
    });
    stream.on("error", () => {
      if (socket.destroyed) return;
      // libuv refuses a reset once our FIN is queued (uv_tcp_close_reset after uv_shutdown), and
      // the handle would then stay open: a plain destroy is all that is left.
      if (socket.writableEnded) socket.destroy();
      else socket.resetAndDestroy();
    });
    stream.on("close", () => {
      // A guest that ended cleanly reached the socket through the pipe as end(), which still
      // flushes what the host has not read; only a connection that did not end tears it down.
      if (!socket.destroyed && (stream.errored || !stream.readableEnded)) socket.destroy();
    });
  }

  /** Creates the connection for a guest SYN and answers SYN-ACK. */
  private establish(entry: Entry, syn: TcpSegment): TcpStream {
    const stream = new TcpStream(this.opts.receiveBuffer);
    entry.stream = stream;
    this.table.set(entry.key, entry);
    entry.conn = Connection.accept(syn, this.connectionOptions(), this.hooks(entry));
    stream.bind(entry.conn);
    this.counters.opened++;
    this.touch(entry);
    return stream;
  }

  /** Dials into a guest: the stack is the client, from the host address. */
  connect(guestIp: number, port: number, timeoutMs = 10_000): Promise<TcpStream> {
    if (this.closing) return Promise.reject(new DialError("closed", "stack is closed"));
    const localIp = this.cfg.hostAddress;
    const localPort = this.allocatePort(guestIp, port, localIp);
    if (localPort === undefined) return Promise.reject(new DialError("unreachable", "no free local port"));
    const key = flowKey(guestIp, port, localIp, localPort);
    const entry: Entry = { key, guestIp, guestPort: port, localIp, localPort };
    const stream = new TcpStream(this.opts.receiveBuffer);
    entry.stream = stream;
    this.table.set(key, entry);
    return new Promise<TcpStream>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          stream.destroy(new DialError("timeout", `connect to ${ipv4ToString(guestIp)}:${port} timed out`)),
        timeoutMs,
      );
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      stream.once("error", onError);
      stream.once("ready-established", () => {
        clearTimeout(timer);
        stream.off("error", onError);
        resolve(stream);
      });
      entry.conn = Connection.connect(localPort, port, this.connectionOptions(), this.hooks(entry));
      stream.bind(entry.conn);
      this.counters.opened++;
      this.touch(entry);
    });
  }

  private allocatePort(guestIp: number, port: number, localIp: number): number | undefined {
    for (let i = 0; i < 16384; i++) {
      const p = this.nextEphemeral;
      this.nextEphemeral = p >= 65535 ? 49152 : p + 1;
      if (!this.table.has(flowKey(guestIp, port, localIp, p))) return p;
    }
    return undefined;
  }

  private connectionOptions(): ConnectionOptions {
    const options: ConnectionOptions = {
      clock: this.clock,
      random: this.random,
      mss: this.cfg.mtu - 40,
      receiveBuffer: this.opts.receiveBuffer,
      sendBuffer: this.opts.sendBuffer,
      timeWaitMs: this.opts.timeWaitMs,
    };
    if (this.maxBurstSegment !== undefined) options.maxBurstSegment = this.maxBurstSegment;
    return options;
  }

  /** The connection's hooks read the stream from the entry: TIME-WAIT lets go of it. */
  private hooks(entry: Entry) {
    return {
      output: (fields: TcpEmitFields, payload: Buffer | undefined, segmentSize?: number) =>
        this.out.sendTcp(entry.localIp, entry.guestIp, fields, payload, segmentSize),
      onData: (data: Buffer) => {
        // Segments of one batch go to the host socket in a single writev at flush time.
        if (entry.socket && !entry.corked) {
          entry.socket.cork();
          entry.corked = true;
        }
        entry.stream?.deliver(data);
      },
      onEstablished: () => entry.stream?.emit("ready-established"),
      onFin: () => entry.stream?.peerFinished(),
      onSendSpace: () => entry.stream?.sendSpace(),
      onClose: (reason: CloseReason) => this.onClosed(entry, reason),
      receiveBacklog: () => entry.stream?.readableLength ?? 0,
      requestFlush: () => this.touch(entry),
      onTimeWait: () => {
        // Both sides are done: only old duplicates remain to absorb, so keep the entry small.
        if (entry.corked) {
          entry.corked = false;
          entry.socket?.uncork();
        }
        entry.stream?.connectionClosed("closed");
        entry.stream = undefined;
        entry.socket = undefined;
        this.timeWait.add(entry);
        if (this.timeWait.size > this.opts.maxTimeWait) this.reclaimTimeWait();
      },
    };
  }

  /** Frees the oldest TIME-WAIT connection (no RST: it is closed already); false if there is none. */
  private reclaimTimeWait(): boolean {
    const oldest = this.timeWait.values().next().value;
    if (!oldest) return false;
    this.timeWait.delete(oldest);
    this.counters.timeWaitReclaimed++;
    oldest.conn?.abort();
    return true;
  }

  private onClosed(entry: Entry, reason: CloseReason): void {
    if (this.table.get(entry.key) === entry) this.table.delete(entry.key);
    this.timeWait.delete(entry);
    // Data written during this batch must not stay corked now that no flush will come.
    if (entry.corked) {
      entry.corked = false;
      entry.socket?.uncork();
    }
    if (entry.timer) clearTimeout(entry.timer);
    entry.timer = undefined;
    this.toFlush.delete(entry);
    this.counters.closed++;
    if (entry.conn) {
      this.counters.timeouts += entry.conn.recovery.timeouts;
      this.counters.fastRetransmits += entry.conn.recovery.fastRetransmits;
      this.counters.segmentsRetransmitted += entry.conn.recovery.segmentsRetransmitted;
    }
    if (reason === "reset") this.counters.reset++;
    else if (reason === "timeout") this.counters.timedOut++;
    else if (reason === "refused") this.counters.refused++;
    entry.stream?.connectionClosed(reason);
  }

  /** Marks a connection for the end-of-batch flush: coalesced ACKs and timer re-arming. */
  private touch(entry: Entry): void {
    this.toFlush.add(entry);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    for (const entry of this.toFlush) {
      if (entry.corked) {
        entry.corked = false;
        entry.socket!.uncork();
      }
      entry.conn?.flush();
      this.armTimer(entry);
    }
    this.toFlush.clear();
  };

  /** Lazily armed: the timer may fire early, then `poll` does nothing and it is re-armed. */
  private armTimer(entry: Entry): void {
    const conn = entry.conn;
    if (!conn || conn.isClosed) return;
    const at = conn.pollAt();
    if (at === undefined) return;
    if (entry.timer && entry.timerAt !== undefined && entry.timerAt <= at) return;
    if (entry.timer) clearTimeout(entry.timer);
    entry.timerAt = at;
    entry.timer = setTimeout(
      () => {
        entry.timer = undefined;
        entry.timerAt = undefined;
        conn.poll(this.clock.now());
        this.touch(entry);
      },
      Math.max(0, at - this.clock.now()) + 1,
    );
    entry.timer.unref?.();
  }

  private sendResetFor(ip: Ipv4Packet, seg: TcpSegment): void {
    const len = seg.payload.length + (seg.flags & TCP_SYN ? 1 : 0) + (seg.flags & 1 ? 1 : 0);
    const fields =
      seg.flags & TCP_ACK
        ? { srcPort: seg.dstPort, dstPort: seg.srcPort, seq: seg.ack, ack: 0, flags: TCP_RST, window: 0 }
        : {
            srcPort: seg.dstPort,
            dstPort: seg.srcPort,
            seq: 0,
            ack: (seg.seq + len) >>> 0,
            flags: TCP_RST | TCP_ACK,
            window: 0,
          };
    this.out.sendTcp(ip.dst, ip.src, fields, undefined);
  }

  private sendResetTo(entry: Entry, syn: TcpSegment): void {
    this.out.sendTcp(
      entry.localIp,
      entry.guestIp,
      {
        srcPort: entry.localPort,
        dstPort: entry.guestPort,
        seq: 0,
        ack: (syn.seq + 1) >>> 0,
        flags: TCP_RST | TCP_ACK,
        window: 0,
      },
      undefined,
    );
  }

  flows(): FlowStats[] {
    const out: FlowStats[] = [];
    for (const e of this.table.values()) {
      out.push({
        protocol: "tcp",
        guest: `${ipv4ToString(e.guestIp)}:${e.guestPort}`,
        remote: `${ipv4ToString(e.localIp)}:${e.localPort}`,
        state: e.conn ? e.conn.state : "CONNECTING-HOST",
        bytesFromGuest: e.stream?.bytesRead ?? 0,
        bytesToGuest: e.stream?.bytesWritten ?? 0,
      });
    }
    return out;
  }

  /** Resets every connection and stops accepting new ones. */
  close(): void {
    this.closing = true;
    for (const e of [...this.table.values()]) {
      e.pendingSocket?.destroy();
      if (e.conn && !e.conn.isClosed) e.conn.abort();
      e.stream?.destroy();
      if (e.timer) clearTimeout(e.timer);
    }
    this.table.clear();
  }
}
