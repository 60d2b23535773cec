/**
 * The stack's UDP NAT. Mapping is endpoint-independent: one host socket per guest source endpoint,
 * so a guest socket keeps one host port whatever it talks to (STUN and its kind work). Filtering is
 * address-and-port-dependent, like Linux's conntrack: the host socket passes on only datagrams from
 * addresses and ports the guest has sent to. A flow is forgotten after `idleTimeoutMs` without
 * traffic, or `streamTimeoutMs` once it has seen both directions.
 */
import dgram from "node:dgram";
import { isIP } from "node:net";
import type { Clock, Logger, Timer } from "@desktopd/core";
import {
  debugEnabled,
  defaultDecision,
  type FlowInfo,
  type FlowPolicy,
  type UdpDecision,
} from "@desktopd/core";
import type { DropCounters, FlowEntry } from "../counters.js";
import type { EgressPolicy } from "../egress.js";
import { DialError } from "../errors.js";
import type { FlowOwner, IpHeader, IpOutput } from "../iface/ip-output.js";
import { formatEndpoint, formatIp, type IpAddr } from "../wire/ip-addr.js";
import type { UdpDatagram } from "../wire/udp.js";
import { GuestShares } from "./budget.js";
import type { AddressMap } from "./host-map.js";

export interface UdpOptions {
  /** A flow that has only seen the guest's datagrams is closed after this long idle (default 120 s). */
  idleTimeoutMs?: number;
  /** A flow that has seen both directions is closed after this long idle (default 180 s). */
  streamTimeoutMs?: number;
  /** Most flows at once; the least recently used is closed to make room (default 4096). */
  maxFlows?: number;
  /** Most flows of one guest; beyond, that guest's least recently used flow makes room (default 2048). */
  maxFlowsPerGuest?: number;
  /** Remote endpoints remembered per flow for filtering; the oldest is forgotten beyond (default 64). */
  maxRemotesPerFlow?: number;
}

/** @deprecated renamed UdpOptions */
export type UdpLayerOptions = UdpOptions;

interface UdpFlow {
  key: string;
  guestIp: IpAddr;
  guestPort: number;
  /** Whose share the flow counts in (see `FlowOwner`). */
  owner: FlowOwner;
  socket: dgram.Socket;
  lastActive: number;
  openedAt: number;
  /** The name the policy's decision gave, else "nat". */
  service: string;
  /** A reply came back: the longer stream timeout applies. */
  replied: boolean;
  /** Host-side endpoints the guest sent to (`remoteKey`) → the egress generation it was allowed under. */
  remotes: Map<string, number>;
  bytesFromGuest: number;
  bytesToGuest: number;
}

/** A UDP socket of the stack on the virtual network, talking to one guest endpoint. */
export interface GuestUdpSocket {
  /** The local port on the host address that the guest sees as the source. */
  readonly localPort: number;
  send(data: Buffer): void;
  /** Datagrams from the guest endpoint. */
  onMessage(handler: (data: Buffer) => void): void;
  close(): void;
}

/** A socket dialled into a guest: only datagrams from that guest endpoint reach its handler. */
interface DialledUdp {
  guestIp: IpAddr;
  guestPort: number;
  localPort: number;
  service: string;
  openedAt: number;
  lastActive: number;
  bytesFromGuest: number;
  bytesToGuest: number;
  handler?: (data: Buffer) => void;
}

const flowKey = (guestIp: IpAddr, guestPort: number) => `${guestIp}:${guestPort}`;

/** A host-side endpoint as the reply filter keys it; "*" stands for a host named by a policy. */
const remoteKey = (host: string, port: number) =>
  host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;

export class UdpNat {
  private readonly flows = new Map<string, UdpFlow>();
  private readonly shares: GuestShares;
  /** Sockets dialled into guests, by local port on the host address. */
  private readonly dialled = new Map<number, DialledUdp>();
  private nextDialPort = 49152;
  private sweeper: Timer | undefined;
  readonly counters = { opened: 0, closed: 0, datagramsIn: 0, datagramsOut: 0, unsolicited: 0 };
  private readonly idleTimeoutMs: number;
  private readonly streamTimeoutMs: number;
  private readonly maxFlows: number;
  private readonly maxRemotes: number;
  private closed = false;

  constructor(
    private readonly addresses: AddressMap,
    private readonly out: IpOutput,
    private readonly drops: DropCounters,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly policy: FlowPolicy | undefined,
    private readonly egress: EgressPolicy,
    options: UdpOptions = {},
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 120_000;
    this.streamTimeoutMs = options.streamTimeoutMs ?? 180_000;
    this.maxFlows = options.maxFlows ?? 4096;
    this.shares = new GuestShares(options.maxFlowsPerGuest ?? 2048);
    this.maxRemotes = options.maxRemotesPerFlow ?? 64;
  }

  get openCount(): number {
    return this.flows.size;
  }

  onDatagram(ip: IpHeader, udp: UdpDatagram): void {
    this.counters.datagramsIn++;
    if (ip.dst === this.addresses.hostAddressFor(ip.src)) {
      const d = this.dialled.get(udp.dstPort);
      if (d && d.guestIp === ip.src && d.guestPort === udp.srcPort) {
        d.lastActive = this.clock.now();
        d.bytesFromGuest += udp.payload.length;
        this.run("udp-dial-handler-failed", () => d.handler?.(Buffer.from(udp.payload)));
        return;
      }
    }
    if (udp.dstPort === 0 || udp.srcPort === 0) {
      this.drops.count("udp-port-zero");
      return;
    }
    const flow: FlowInfo = {
      protocol: "udp",
      guestIp: formatIp(ip.src),
      guestPort: udp.srcPort,
      dstIp: formatIp(ip.dst),
      dstPort: udp.dstPort,
    };
    const decision = this.decide(ip.dst, flow);
    if (decision.action === "reject") {
      this.drops.count("udp-rejected");
      this.out.sendUnreachable(ip.dst, ip.src, "port", this.out.quote(ip));
      return;
    }
    if (decision.action === "handle") {
      const src = ip.src;
      const dst = ip.dst;
      const reply = (data: Buffer) => {
        if (this.closed) return;
        this.counters.datagramsOut++;
        this.out.sendUdp(dst, src, udp.dstPort, udp.srcPort, data);
      };
      this.run("udp-handler-failed", () => decision.handler(Buffer.from(udp.payload), flow, reply));
      return;
    }
    if (this.closed) return;
    const host = decision.host ?? this.addresses.target(ip.dst);
    const port = decision.port ?? udp.dstPort;
    // A policy may name the target host by name: its replies are then matched by port alone.
    const remote = remoteKey(decision.host === undefined || isIP(host) ? host : "*", port);
    // Egress is checked once per remote (again after the rules change), before any host socket exists.
    const generation = this.egress.generation;
    const known = this.flows.get(flowKey(ip.src, udp.srcPort));
    const allowed = known?.remotes.get(remote) === generation;
    if (!allowed && this.refused(ip, udp)) {
      // Its replies are filtered out from now on.
      known?.remotes.delete(remote);
      return;
    }
    const f = known ?? this.flowFor(ip.src, udp.srcPort, this.out.ownerOf(ip));
    if (decision.service) f.service = decision.service;
    if (!allowed) {
      // Remembered for filtering the replies; the oldest remote goes beyond the bound.
      f.remotes.delete(remote);
      f.remotes.set(remote, generation);
      if (f.remotes.size > this.maxRemotes) f.remotes.delete(f.remotes.keys().next().value!);
    }
    f.lastActive = this.clock.now();
    f.bytesFromGuest += udp.payload.length;
    // Most recently used last: eviction takes the first.
    this.flows.delete(f.key);
    this.flows.set(f.key, f);
    try {
      f.socket.send(udp.payload, port, host, (err) => {
        if (err) this.drops.count("udp-host-send-failed");
      });
    } catch {
      this.drops.count("udp-host-send-failed");
    }
  }

  /** Whether the egress policy refuses this datagram; if so the guest is told (ICMP). */
  private refused(ip: IpHeader, udp: UdpDatagram): boolean {
    const verdict = this.egress.check({
      protocol: "udp",
      guestIp: ip.src,
      guestPort: udp.srcPort,
      dstIp: ip.dst,
      dstPort: udp.dstPort,
    });
    if (verdict.allowed) return false;
    this.drops.count("udp-egress-denied");
    this.out.sendUnreachable(ip.dst, ip.src, "admin", this.out.quote(ip));
    return true;
  }

  /** Opens a UDP socket into a guest, from the host address (the UDP side of port forwarding). */
  dial(guestIp: IpAddr, guestPort: number, service = "dial"): GuestUdpSocket {
    if (this.closed) throw new DialError("closed", "stack is closed");
    const localIp = this.addresses.hostAddressFor(guestIp);
    if (localIp === undefined) throw new DialError("unreachable", "IPv6 is off");
    let localPort = 0;
    for (let i = 0; i < 16384 && localPort === 0; i++) {
      const p = this.nextDialPort;
      this.nextDialPort = p >= 65535 ? 49152 : p + 1;
      if (!this.dialled.has(p)) localPort = p;
    }
    if (localPort === 0) throw new DialError("unreachable", "no free local UDP port");
    const now = this.clock.now();
    const entry: DialledUdp = {
      guestIp,
      guestPort,
      localPort,
      service,
      openedAt: now,
      lastActive: now,
      bytesFromGuest: 0,
      bytesToGuest: 0,
    };
    this.dialled.set(localPort, entry);
    return {
      localPort,
      send: (data) => {
        if (this.closed) return;
        this.counters.datagramsOut++;
        entry.lastActive = this.clock.now();
        entry.bytesToGuest += data.length;
        this.out.sendUdp(localIp, guestIp, localPort, guestPort, data);
      },
      onMessage: (handler) => {
        entry.handler = handler;
      },
      close: () => {
        if (this.dialled.get(localPort) === entry) this.dialled.delete(localPort);
      },
    };
  }

  private decide(dst: IpAddr, flow: FlowInfo): UdpDecision {
    try {
      return this.policy?.udp?.(flow) ?? defaultDecision(this.addresses.isGateway(dst));
    } catch (err) {
      this.log.error(
        { err: (err as Error)?.stack ?? String(err), flow },
        "udp policy failed; refused the datagram",
      );
      return { action: "reject" };
    }
  }

  /** Runs user code for one datagram: a throw is counted and logged, never passed on. */
  private run(reason: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.drops.count(reason);
      this.log.error({ err: (err as Error)?.stack ?? String(err) }, "udp handler failed");
    }
  }

  private flowFor(guestIp: IpAddr, guestPort: number, owner: FlowOwner): UdpFlow {
    const key = flowKey(guestIp, guestPort);
    const existing = this.flows.get(key);
    if (existing) return existing;
    if (this.shares.full(owner)) {
      const own = this.oldestOf(owner);
      if (own) {
        this.drops.count("udp-guest-share-evicted");
        this.closeFlow(own);
      }
    }
    if (this.flows.size >= this.maxFlows) {
      const oldest = this.flows.values().next().value;
      if (oldest) {
        this.drops.count("udp-flow-evicted");
        this.closeFlow(oldest);
      }
    }
    const v6 = typeof guestIp === "string";
    // An IPv6 flow's socket takes IPv6 peers only: an IPv4-mapped peer is not a way to IPv4.
    const socket = dgram.createSocket(v6 ? { type: "udp6", ipv6Only: true } : { type: "udp4" });
    const f: UdpFlow = {
      key,
      guestIp,
      guestPort,
      owner,
      socket,
      lastActive: this.clock.now(),
      openedAt: this.clock.now(),
      service: "nat",
      replied: false,
      remotes: new Map(),
      bytesFromGuest: 0,
      bytesToGuest: 0,
    };
    if (debugEnabled(this.log))
      this.log.debug({ guest: formatEndpoint(guestIp, guestPort) }, "udp flow opened");
    socket.on("message", (msg, rinfo) => {
      if (!f.remotes.has(remoteKey(rinfo.address, rinfo.port)) && !f.remotes.has(`*:${rinfo.port}`)) {
        this.counters.unsolicited++;
        this.drops.count("udp-unsolicited");
        return;
      }
      f.lastActive = this.clock.now();
      f.replied = true;
      f.bytesToGuest += msg.length;
      this.counters.datagramsOut++;
      const src = this.addresses.guestSource(rinfo.address, v6);
      if (src === undefined) {
        this.drops.count("udp-reply-source");
        return;
      }
      this.out.sendUdp(src, guestIp, rinfo.port, guestPort, msg);
    });
    socket.on("error", (err) => {
      this.log.debug({ err: err.message }, "udp flow socket error");
      this.drops.count("udp-host-socket-error");
      // A socket that could not even bind (out of descriptors) is useless: a later datagram opens a new one.
      if (this.flows.get(key) === f && !isBound(socket)) this.closeFlow(f);
    });
    socket.bind(0);
    this.flows.set(key, f);
    this.shares.take(owner);
    this.counters.opened++;
    this.armSweeper();
    return f;
  }

  private oldestOf(owner: FlowOwner): UdpFlow | undefined {
    for (const f of this.flows.values()) if (f.owner === owner) return f;
    return undefined;
  }

  private closeFlow(f: UdpFlow): void {
    if (this.flows.get(f.key) !== f) return;
    this.flows.delete(f.key);
    if (debugEnabled(this.log))
      this.log.debug(
        {
          guest: formatEndpoint(f.guestIp, f.guestPort),
          bytesFromGuest: f.bytesFromGuest,
          bytesToGuest: f.bytesToGuest,
          ms: this.clock.now() - f.openedAt,
        },
        "udp flow closed",
      );
    this.shares.give(f.owner);
    try {
      f.socket.close();
    } catch {
      // Already closed after an error.
    }
    this.counters.closed++;
  }

  private armSweeper(): void {
    if (this.sweeper || this.closed) return;
    const every = Math.max(100, Math.min(this.idleTimeoutMs, this.streamTimeoutMs, 10_000));
    this.sweeper = this.clock.setTimer(() => {
      this.sweeper = undefined;
      this.sweep();
      if (this.flows.size > 0) this.armSweeper();
    }, every);
  }

  private sweep(): void {
    const now = this.clock.now();
    for (const f of [...this.flows.values()]) {
      const timeout = f.replied ? this.streamTimeoutMs : this.idleTimeoutMs;
      if (now - f.lastActive >= timeout) this.closeFlow(f);
    }
  }

  listFlows(): FlowEntry[] {
    const now = this.clock.now();
    const out: FlowEntry[] = [];
    for (const f of this.flows.values()) {
      // Most recent remote last (see onDatagram).
      let remote = "";
      for (const r of f.remotes.keys()) remote = r;
      out.push({
        protocol: "udp",
        guest: formatEndpoint(f.guestIp, f.guestPort),
        remote,
        direction: "outbound",
        state: f.replied ? "REPLIED" : "OPEN",
        service: f.service,
        bytesFromGuest: f.bytesFromGuest,
        bytesToGuest: f.bytesToGuest,
        ageMs: now - f.openedAt,
        idleMs: now - f.lastActive,
      });
    }
    for (const d of this.dialled.values()) {
      out.push({
        protocol: "udp",
        guest: formatEndpoint(d.guestIp, d.guestPort),
        remote: formatEndpoint(this.addresses.hostAddressFor(d.guestIp) ?? "", d.localPort),
        direction: "inbound",
        state: d.bytesFromGuest > 0 ? "REPLIED" : "OPEN",
        service: d.service,
        bytesFromGuest: d.bytesFromGuest,
        bytesToGuest: d.bytesToGuest,
        ageMs: now - d.openedAt,
        idleMs: now - d.lastActive,
      });
    }
    return out;
  }

  close(): void {
    this.closed = true;
    this.sweeper?.cancel();
    this.sweeper = undefined;
    this.dialled.clear();
    for (const f of [...this.flows.values()]) this.closeFlow(f);
  }
}

function isBound(socket: dgram.Socket): boolean {
  try {
    socket.address();
    return true;
  } catch {
    return false;
  }
}
