/**
 * The stack's TCP flow table: every connection between a guest and the stack, NATed to a host
 * socket, served in-process, or dialled into the guest. It admits new flows (policy, egress,
 * per-guest shares, memory budget, SYN backlog), routes segments to them and batches their flushes.
 */
import type { Clock, Logger, Random } from "@desktopd/core";
import {
  debugEnabled,
  defaultDecision,
  type FlowInfo,
  type FlowPolicy,
  SlabPool,
  type TcpDecision,
} from "@desktopd/core";
import type { ResolvedNetwork } from "../config.js";
import type { DropCounters, FlowEntry, StackCounters } from "../counters.js";
import type { EgressPolicy } from "../egress.js";
import { DialError } from "../errors.js";
import type { IpHeader, IpOutput } from "../iface/ip-output.js";
import type { ConnectionOptions } from "../tcp/connection.js";
import { TcpState } from "../tcp/state.js";
import type { TcpStream } from "../tcp/stream.js";
import type { TimeWaitRecord } from "../tcp/time-wait.js";
import { formatEndpoint, formatIp, type IpAddr } from "../wire/ip-addr.js";
import { resetFor, TCP_ACK, TCP_RST, TCP_SYN, type TcpSegment } from "../wire/tcp.js";
import { BufferBudget, type BufferBudgetOptions, GuestShares } from "./budget.js";
import type { AddressMap } from "./host-map.js";
import { type FlowIds, type Grants, type TcpCounters, TcpFlow, type TcpFlowContext } from "./tcp-flow.js";
import { type FlowAbout, TimeWaitTable } from "./time-wait-table.js";

export interface TcpOptions {
  /** Most connections at once, all guests (established and pending; TIME-WAIT is apart; default 16384). */
  maxConnections?: number;
  /** Most connections one guest may open (default 8192): the rest of the table stays for the others. */
  maxConnectionsPerGuest?: number;
  /** Most host connects in progress at once: bounds a SYN flood (default 1024). */
  maxPendingConnects?: number;
  /** Most host connects in progress for one guest (default 256). */
  maxPendingConnectsPerGuest?: number;
  /** Host connect timeout before the guest gets an ICMP unreachable (default 30 s). */
  connectTimeoutMs?: number;
  /** Largest receive buffer one connection grows to (default 4 MiB). */
  receiveBuffer?: number;
  /** Largest send buffer one connection grows to (default 4 MiB). */
  sendBuffer?: number;
  /**
   * Buffer each way a new connection starts with (default 64 KiB); it doubles while the window
   * or the send buffer limits the flow, as far as `memory` allows.
   */
  initialBuffer?: number;
  /** Smallest buffer each way a new connection is admitted with (default 8 KiB); below, it is refused. */
  minBuffer?: number;
  /** Byte budget of all buffered data, globally and per guest. */
  memory?: BufferBudgetOptions;
  timeWaitMs?: number;
  /**
   * Most connections kept in TIME-WAIT (ours closed first), as small records outside
   * `maxConnections`; beyond, the oldest is freed (default 4096), as Linux bounds its TIME-WAIT
   * buckets.
   */
  maxTimeWait?: number;
  /** Keepalive on host sockets after this much idle time, to notice dead host peers (default 60 s; 0: off). */
  hostKeepAliveMs?: number;
  /**
   * Keepalive towards the guest after this much idle time, to notice a guest that vanished
   * (default 600 s; 0: off); probes every `guestKeepAliveIntervalMs` (75 s), 9 of them.
   */
  guestKeepAliveMs?: number;
  guestKeepAliveIntervalMs?: number;
  /** How long a connection whose owner let go waits in FIN-WAIT-2 for the guest's FIN (default 60 s). */
  finWait2TimeoutMs?: number;
}

/** @deprecated renamed TcpOptions */
export type TcpLayerOptions = TcpOptions;

const flowKey = (guestIp: IpAddr, guestPort: number, localIp: IpAddr, localPort: number) =>
  `${guestIp}:${guestPort}>${localIp}:${localPort}`;

/** What a flow's listing and its TIME-WAIT record keep of it. */
function aboutFlow(f: TcpFlow): FlowAbout {
  return {
    inbound: f.kind === "dialled",
    service: f.service,
    bytesFromGuest: f.bytesFromGuest,
    bytesToGuest: f.bytesToGuest,
    openedAt: f.openedAt,
  };
}

function listed(ids: FlowIds, about: FlowAbout, state: string, now: number, idleMs: number): FlowEntry {
  return {
    protocol: "tcp",
    guest: formatEndpoint(ids.guestIp, ids.guestPort),
    remote: formatEndpoint(ids.localIp, ids.localPort),
    direction: about.inbound ? "inbound" : "outbound",
    state,
    service: about.service,
    bytesFromGuest: about.bytesFromGuest,
    bytesToGuest: about.bytesToGuest,
    ageMs: now - about.openedAt,
    idleMs,
  };
}

export class TcpFlowTable implements TcpFlowContext {
  private readonly flows = new Map<string, TcpFlow>();
  /** Connections in TIME-WAIT, as records (their flows are gone). */
  private readonly timeWaits: TimeWaitTable;
  private readonly shares: GuestShares;
  private readonly pendingShares: GuestShares;
  private pending = 0;
  private toFlush = new Set<TcpFlow>();
  /** The batch being flushed; swapped with `toFlush` and emptied after, so no set is built per batch. */
  private flushing = new Set<TcpFlow>();
  private flushScheduled = false;
  private closing = false;
  private nextEphemeral = 49152;
  private readonly o: Required<Omit<TcpOptions, "memory">>;
  readonly budget: BufferBudget;
  /** Where NATed flows' host reads are copied, recycled once the guest acknowledges them. */
  readonly readPool: SlabPool;
  private readonly releaseSent = (chunk: Buffer): void => this.readPool.release(chunk);
  /**
   * Where guests' data to host sockets is copied out of lent frames, recycled once the socket has
   * written it.
   */
  readonly writePool: SlabPool;
  readonly maxBuffer: number;
  readonly connectTimeoutMs: number;
  readonly hostKeepAliveMs: number;
  readonly counters: TcpCounters = {
    timeouts: 0,
    fastRetransmits: 0,
    segmentsRetransmitted: 0,
    opened: 0,
    closed: 0,
    refused: 0,
    reset: 0,
    timedOut: 0,
    timeWaitReclaimed: 0,
    internalErrors: 0,
  };
  /**
   * Largest payload of one emitted data segment when the link takes TCP super-segments
   * (TSO); undefined for one MSS. Applies to connections opened after it is set.
   */
  maxBurstSegment: number | undefined;

  constructor(
    private readonly cfg: ResolvedNetwork,
    private readonly addresses: AddressMap,
    readonly out: IpOutput,
    readonly drops: DropCounters,
    readonly clock: Clock,
    private readonly random: Random,
    readonly log: Logger,
    private readonly policy: FlowPolicy | undefined,
    private readonly egress: EgressPolicy,
    options: TcpOptions = {},
  ) {
    const { memory, ...rest } = options;
    this.o = {
      maxConnections: 16384,
      maxConnectionsPerGuest: 8192,
      maxPendingConnects: 1024,
      maxPendingConnectsPerGuest: 256,
      connectTimeoutMs: 30_000,
      receiveBuffer: 4 * 1024 * 1024,
      sendBuffer: 4 * 1024 * 1024,
      initialBuffer: 64 * 1024,
      minBuffer: 8 * 1024,
      timeWaitMs: 30_000,
      maxTimeWait: 4096,
      hostKeepAliveMs: 60_000,
      guestKeepAliveMs: 600_000,
      guestKeepAliveIntervalMs: 75_000,
      finWait2TimeoutMs: 60_000,
      ...rest,
    };
    this.budget = new BufferBudget(memory);
    this.readPool = new SlabPool({ clock: this.clock });
    this.writePool = new SlabPool({ clock: this.clock });
    this.shares = new GuestShares(this.o.maxConnectionsPerGuest);
    this.pendingShares = new GuestShares(this.o.maxPendingConnectsPerGuest);
    this.maxBuffer = Math.max(this.o.receiveBuffer, this.o.sendBuffer);
    this.timeWaits = new TimeWaitTable({
      clock: this.clock,
      waitMs: this.o.timeWaitMs,
      max: this.o.maxTimeWait,
      send: (ids, fields) => this.out.sendTcp(ids.localIp, ids.guestIp, fields, undefined),
      reclaimed: () => this.counters.timeWaitReclaimed++,
    });
    this.connectTimeoutMs = this.o.connectTimeoutMs;
    this.hostKeepAliveMs = this.o.hostKeepAliveMs;
  }

  get openCount(): number {
    return this.flows.size;
  }

  /** Connections waiting in TIME-WAIT (not counted in `openCount`). */
  get timeWaitCount(): number {
    return this.timeWaits.size;
  }

  /** The counters, with the retransmissions of connections still open added to the closed ones'. */
  countersNow(): TcpCounters {
    const c = { ...this.counters };
    for (const f of this.flows.values()) {
      const r = f.conn?.recovery;
      if (!r) continue;
      c.timeouts += r.timeouts;
      c.fastRetransmits += r.fastRetransmits;
      c.segmentsRetransmitted += r.segmentsRetransmitted;
    }
    return c;
  }

  get pendingConnects(): number {
    return this.pending;
  }

  // ---- Segments from guests ---------------------------------------------------------------

  onSegment(ip: IpHeader, seg: TcpSegment): void {
    const key = flowKey(ip.src, seg.srcPort, ip.dst, seg.dstPort);
    const flow = this.flows.get(key);
    const newSyn = (seg.flags & (TCP_SYN | TCP_ACK)) === TCP_SYN;
    if (flow === undefined) {
      const waiting = this.timeWaits.get(key);
      // The guest reuses the 4-tuple of a connection we closed first: the old one gives way
      // (as Linux lets a new SYN take over a TIME-WAIT socket), and this SYN opens a new one.
      if (waiting && newSyn) this.timeWaits.reclaim(key);
      else if (waiting) {
        this.timeWaits.onSegment(waiting, seg);
        return;
      }
    } else if (flow.conn?.isTimeWait && newSyn) {
      // The same, within the batch that ended the old connection.
      this.counters.timeWaitReclaimed++;
      flow.abort();
    } else {
      if (flow.conn) flow.onSegment(seg);
      // The guest gave up before the host answered: the error path frees the flow.
      else if (seg.flags & TCP_RST) flow.guestResetWhileConnecting();
      return; // retransmitted SYNs while the host connect is pending are absorbed
    }
    if (seg.flags & TCP_RST) return;
    if (!(seg.flags & TCP_SYN) || seg.flags & TCP_ACK) {
      this.drops.count("tcp-no-connection");
      this.sendResetFor(ip, seg);
      return;
    }
    if (this.closing) return;
    this.admit(ip, seg, key);
  }

  /** A guest SYN for a new flow: every check that may refuse it, then the flow. */
  private admit(ip: IpHeader, seg: TcpSegment, key: string): void {
    const guest = this.out.ownerOf(ip);
    const refuse = (reason: string) => {
      this.drops.count(reason);
      this.sendResetFor(ip, seg);
    };
    if (seg.dstPort === 0 || seg.srcPort === 0) {
      refuse("tcp-port-zero");
      return;
    }
    if (this.flows.size >= this.o.maxConnections) {
      refuse("tcp-table-full");
      return;
    }
    if (this.shares.full(guest)) {
      refuse("tcp-guest-share-full");
      return;
    }
    const info: FlowInfo = {
      protocol: "tcp",
      guestIp: formatIp(ip.src),
      guestPort: seg.srcPort,
      dstIp: formatIp(ip.dst),
      dstPort: seg.dstPort,
    };
    const decision = this.decide(ip.dst, info);
    if (decision.action === "reject") {
      this.counters.refused++;
      this.sendResetFor(ip, seg);
      return;
    }
    if (decision.action === "nat") {
      const verdict = this.egress.check({
        protocol: "tcp",
        guestIp: ip.src,
        guestPort: seg.srcPort,
        dstIp: ip.dst,
        dstPort: seg.dstPort,
      });
      if (!verdict.allowed) {
        refuse("tcp-egress-denied");
        return;
      }
      if (this.pending >= this.o.maxPendingConnects) {
        this.drops.count("tcp-syn-backlog-full");
        return;
      }
      if (this.pendingShares.full(guest)) {
        this.drops.count("tcp-guest-syn-backlog-full");
        return;
      }
    }
    const grants = this.takeGrants(guest);
    if (!grants) {
      refuse("tcp-memory-budget");
      return;
    }
    const ids: FlowIds = {
      key,
      guestIp: ip.src,
      guestPort: seg.srcPort,
      localIp: ip.dst,
      localPort: seg.dstPort,
      owner: guest,
    };
    if (decision.action === "handle") {
      const handled = TcpFlow.handled(this, ids, grants, seg, decision.handler, info);
      if (decision.service) handled.service = decision.service;
      this.insert(handled, true);
      return;
    }
    // The guest's SYN must outlive the frame buffer it came in.
    const syn: TcpSegment = { ...seg, payload: Buffer.alloc(0) };
    this.pending++;
    this.pendingShares.take(guest);
    const flow = TcpFlow.nat(
      this,
      ids,
      grants,
      syn,
      this.out.quote(ip),
      decision.host ?? this.addresses.target(ip.dst),
      decision.port ?? seg.dstPort,
    );
    if (decision.service) flow.service = decision.service;
    this.insert(flow, true);
  }

  private decide(dst: IpAddr, flow: FlowInfo): TcpDecision {
    try {
      return this.policy?.tcp?.(flow) ?? defaultDecision(this.addresses.isGateway(dst));
    } catch (err) {
      // A policy that throws refuses this flow only.
      this.counters.internalErrors++;
      this.log.error(
        { err: (err as Error)?.stack ?? String(err), flow },
        "tcp policy failed; refused the flow",
      );
      return { action: "reject" };
    }
  }

  private takeGrants(guest: IpAddr): Grants | undefined {
    const want = Math.min(this.o.initialBuffer, this.maxBuffer);
    const min = Math.min(this.o.minBuffer, want);
    const rx = this.budget.take(guest, want, min);
    if (rx === 0) return undefined;
    const tx = this.budget.take(guest, want, min);
    if (tx === 0) {
      this.budget.give(guest, rx);
      return undefined;
    }
    return { rx, tx };
  }

  /** Guest-initiated flows count against their guest's share; dialled ones do not. */
  private insert(flow: TcpFlow, guestInitiated: boolean): void {
    // A flow may have failed while being born; then it released itself already.
    if (flow.isReleased) return;
    this.flows.set(flow.ids.key, flow);
    // Built only when written: a flow's description is two formatted endpoints per connection.
    if (debugEnabled(this.log))
      this.log.debug({ flow: flow.describe(), service: flow.service }, "tcp flow opened");
    if (guestInitiated) {
      flow.countedInShare = true;
      this.shares.take(flow.ids.owner);
    }
  }

  // ---- TcpFlowContext ---------------------------------------------------------------------

  connectionOptions(grants: Grants, ids: FlowIds): ConnectionOptions {
    // The MTU less the IP and TCP headers: 20 + 20 over IPv4, 40 + 20 over IPv6.
    const headers = typeof ids.guestIp === "number" ? 40 : 60;
    const options: ConnectionOptions = {
      clock: this.clock,
      random: this.random,
      mss: this.cfg.mtu - headers,
      releaseSent: this.releaseSent,
      receiveBuffer: grants.rx,
      sendBuffer: grants.tx,
      timeWaitMs: this.o.timeWaitMs,
      finWait2TimeoutMs: this.o.finWait2TimeoutMs,
      keepAliveIdleMs: this.o.guestKeepAliveMs,
      keepAliveIntervalMs: this.o.guestKeepAliveIntervalMs,
    };
    if (this.maxBurstSegment !== undefined) options.maxBurstSegment = this.maxBurstSegment;
    return options;
  }

  touch(flow: TcpFlow): void {
    this.toFlush.add(flow);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  released(flow: TcpFlow): void {
    if (this.flows.get(flow.ids.key) === flow) {
      this.flows.delete(flow.ids.key);
      if (debugEnabled(this.log))
        this.log.debug(
          {
            flow: flow.describe(),
            service: flow.service,
            bytesFromGuest: flow.bytesFromGuest,
            bytesToGuest: flow.bytesToGuest,
            ms: this.clock.now() - flow.openedAt,
          },
          "tcp flow closed",
        );
    }
    this.toFlush.delete(flow);
    this.flushing.delete(flow);
    if (flow.countedInShare) {
      flow.countedInShare = false;
      this.shares.give(flow.ids.owner);
    }
  }

  connectSettled(flow: TcpFlow): void {
    this.pending--;
    this.pendingShares.give(flow.ids.owner);
  }

  retire(flow: TcpFlow, record: TimeWaitRecord): void {
    const about = aboutFlow(flow);
    // The flow closes normally and leaves the table; the record takes its 4-tuple.
    flow.conn?.retire();
    this.timeWaits.add(record, flow.ids, about);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    // A flow's flush can ask for another (a writer woken by a grown send buffer writes again):
    // that request goes into the other set and its own next batch, not lost with this one.
    const batch = this.toFlush;
    this.toFlush = this.flushing;
    this.flushing = batch;
    for (const flow of batch) flow.flush();
    batch.clear();
  };

  // ---- Dialling into guests ---------------------------------------------------------------

  /** Dials into a guest: the stack is the client, from the host address. */
  async connect(guestIp: IpAddr, port: number, timeoutMs = 10_000, service = "dial"): Promise<TcpStream> {
    if (this.closing) throw new DialError("closed", "stack is closed");
    const localIp = this.addresses.hostAddressFor(guestIp);
    if (localIp === undefined) throw new DialError("unreachable", "IPv6 is off");
    const localPort = this.allocatePort(guestIp, port, localIp);
    if (localPort === undefined) throw new DialError("unreachable", "no free local port");
    const grants = this.takeGrants(guestIp);
    if (!grants) throw new DialError("unreachable", "the guest's buffer budget is exhausted");
    const ids: FlowIds = {
      key: flowKey(guestIp, port, localIp, localPort),
      guestIp,
      guestPort: port,
      localIp,
      localPort,
      owner: guestIp,
    };
    const { flow, established } = TcpFlow.dial(this, ids, grants, timeoutMs);
    flow.service = service;
    this.insert(flow, false);
    const stream = await established;
    // A reset in the same batch as the SYN-ACK destroys the stream before the caller runs.
    if (stream.destroyed) throw stream.errored ?? new DialError("reset", "connection reset by guest");
    return stream;
  }

  private allocatePort(guestIp: IpAddr, port: number, localIp: IpAddr): number | undefined {
    for (let i = 0; i < 16384; i++) {
      const p = this.nextEphemeral;
      this.nextEphemeral = p >= 65535 ? 49152 : p + 1;
      const key = flowKey(guestIp, port, localIp, p);
      if (!this.flows.has(key) && !this.timeWaits.has(key)) return p;
    }
    return undefined;
  }

  // ---- Answers without a flow ---------------------------------------------------------------

  private sendResetFor(ip: IpHeader, seg: TcpSegment): void {
    this.out.sendTcp(ip.dst, ip.src, resetFor(seg), undefined);
  }

  // ---- Introspection and shutdown -----------------------------------------------------------

  listFlows(): FlowEntry[] {
    const now = this.clock.now();
    const out: FlowEntry[] = [];
    for (const f of this.flows.values()) {
      const state = f.conn ? f.conn.state : "CONNECTING-HOST";
      out.push(listed(f.ids, aboutFlow(f), state, now, now - f.lastActive));
    }
    for (const w of this.timeWaits.values()) {
      // Idle since the wait began: 2MSL before its end.
      out.push(listed(w.ids, w, TcpState.TimeWait, now, this.o.timeWaitMs - (w.expiresAt - now)));
    }
    return out;
  }

  /** Buffer bytes granted, all guests and per guest. */
  memory(): StackCounters["memory"] {
    const pool = (p: SlabPool) => ({ ...p.size, ...p.stats });
    return {
      usedBytes: this.budget.usedBytes,
      totalBytes: this.budget.totalBytes,
      perGuestBytes: this.budget.perGuestBytes,
      readPool: pool(this.readPool),
      writePool: pool(this.writePool),
    };
  }

  /** Resets every connection and stops accepting new ones. */
  close(): void {
    this.closing = true;
    this.readPool.close();
    this.writePool.close();
    for (const f of [...this.flows.values()]) f.abort(new DialError("closed", "stack is closed"));
    this.flows.clear();
    this.timeWaits.close();
  }
}
