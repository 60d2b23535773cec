import dgram from "node:dgram";
import type { NetworkConfig } from "../config.js";
import type { DropCounters, FlowStats } from "../counters.js";
import { DialError } from "../errors.js";
import type { IpOutput } from "../iface/ip-output.js";
import type { Logger } from "../logger.js";
import { defaultDecision, type FlowInfo, type FlowPolicy, type UdpDecision } from "../policy.js";
import { ipv4ToString } from "../wire/address.js";
import { ICMP_CODE_PORT_UNREACHABLE } from "../wire/icmpv4.js";
import { type Ipv4Packet, icmpQuote } from "../wire/ipv4.js";
import type { UdpDatagram } from "../wire/udp.js";
import { guestSource, hostTarget } from "./host-map.js";

export interface UdpLayerOptions {
  /** A flow with no traffic either way for this long is closed (default 60 s). */
  idleTimeoutMs?: number;
  /** Most flows at once; the least recently used is closed to make room (default 4096). */
  maxFlows?: number;
}

interface UdpFlow {
  key: string;
  guestIp: number;
  guestPort: number;
  socket: dgram.Socket;
  lastActive: number;
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
  guestIp: number;
  guestPort: number;
  handler?: (data: Buffer) => void;
}

/**
 * The stack's UDP NAT: one host socket per guest source endpoint (endpoint-independent
 * mapping, so a guest socket can talk to several servers), closed after an idle timeout.
 */
export class UdpLayer {
  private readonly flows = new Map<string, UdpFlow>();
  /** Sockets dialled into guests, by local port on the host address. */
  private readonly dialled = new Map<number, DialledUdp>();
  private nextDialPort = 49152;
  private readonly sweeper: NodeJS.Timeout;
  readonly counters = { opened: 0, closed: 0, datagramsIn: 0, datagramsOut: 0 };
  private readonly idleTimeoutMs: number;
  private readonly maxFlows: number;

  constructor(
    private readonly cfg: NetworkConfig,
    private readonly out: IpOutput,
    private readonly drops: DropCounters,
    private readonly log: Logger,
    private readonly policy: FlowPolicy | undefined,
    options: UdpLayerOptions = {},
  ) {
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.maxFlows = options.maxFlows ?? 4096;
    this.sweeper = setInterval(() => this.sweep(), Math.min(this.idleTimeoutMs, 10_000));
    this.sweeper.unref();
  }

  get openCount(): number {
    return this.flows.size;
  }

  onDatagram(ip: Ipv4Packet, udp: UdpDatagram): void {
    this.counters.datagramsIn++;
    if (ip.dst === this.cfg.hostAddress) {
      const d = this.dialled.get(udp.dstPort);
      if (d && d.guestIp === ip.src && d.guestPort === udp.srcPort) {
        d.handler?.(Buffer.from(udp.payload));
        return;
      }
    }
    const flow: FlowInfo = {
      protocol: "udp",
      guestIp: ipv4ToString(ip.src),
      guestPort: udp.srcPort,
      dstIp: ipv4ToString(ip.dst),
      dstPort: udp.dstPort,
    };
    const decision = this.decide(ip.dst, flow);
    if (decision.action === "reject") {
      this.drops.count("udp-rejected");
      this.out.sendUnreachable(ip.dst, ip.src, ICMP_CODE_PORT_UNREACHABLE, icmpQuote(ip));
      return;
    }
    if (decision.action === "handle") {
      const src = ip.src;
      const dst = ip.dst;
      const reply = (data: Buffer) => {
        this.counters.datagramsOut++;
        this.out.sendUdp(dst, src, udp.dstPort, udp.srcPort, data);
      };
      decision.handler(Buffer.from(udp.payload), flow, reply);
      return;
    }
    const f = this.flowFor(ip.src, udp.srcPort);
    f.lastActive = Date.now();
    f.bytesFromGuest += udp.payload.length;
    // Refresh LRU order.
    this.flows.delete(f.key);
    this.flows.set(f.key, f);
    f.socket.send(
      udp.payload,
      decision.port ?? udp.dstPort,
      decision.host ?? hostTarget(this.cfg, ip.dst),
      (err) => {
        if (err) this.drops.count("udp-host-send-failed");
      },
    );
  }

  /** Opens a UDP socket into a guest, from the host address (the UDP side of port forwarding). */
  dial(guestIp: number, guestPort: number): GuestUdpSocket {
    let localPort = 0;
    for (let i = 0; i < 16384 && localPort === 0; i++) {
      const p = this.nextDialPort;
      this.nextDialPort = p >= 65535 ? 49152 : p + 1;
      if (!this.dialled.has(p)) localPort = p;
    }
    if (localPort === 0) throw new DialError("unreachable", "no free local UDP port");
    const entry: DialledUdp = {
      guestIp,
      guestPort,
    };
    this.dialled.set(localPort, entry);
    return {
      localPort,
      send: (data) => {
        this.counters.datagramsOut++;
        this.out.sendUdp(this.cfg.hostAddress, guestIp, localPort, guestPort, data);
      },
      onMessage: (handler) => {
        entry.handler = handler;
      },
      close: () => {
        if (this.dialled.get(localPort) === entry) this.dialled.delete(localPort);
      },
    };
  }

  private decide(dst: number, flow: FlowInfo): UdpDecision {
    return this.policy?.udp?.(flow) ?? defaultDecision(dst === this.cfg.gateway);
  }

  private flowFor(guestIp: number, guestPort: number): UdpFlow {
    const key = `${guestIp}:${guestPort}`;
    const existing = this.flows.get(key);
    if (existing) return existing;
    if (this.flows.size >= this.maxFlows) {
      const oldest = this.flows.values().next().value;
      if (oldest) {
        this.drops.count("udp-flow-evicted");
        this.closeFlow(oldest);
      }
    }
    const socket = dgram.createSocket("udp4");
    const f: UdpFlow = {
      key,
      guestIp,
      guestPort,
      socket,
      lastActive: Date.now(),
      bytesFromGuest: 0,
      bytesToGuest: 0,
    };
    socket.on("message", (msg, rinfo) => {
      f.lastActive = Date.now();
      f.bytesToGuest += msg.length;
      this.counters.datagramsOut++;
      const src = guestSource(this.cfg, rinfo.address, this.cfg.hostAddress);
      this.out.sendUdp(src, guestIp, rinfo.port, guestPort, msg);
    });
    socket.on("error", (err) => {
      this.log.debug({ err: err.message }, "udp flow socket error");
      this.drops.count("udp-host-socket-error");
    });
    socket.bind(0);
    this.flows.set(key, f);
    this.counters.opened++;
    return f;
  }

  private closeFlow(f: UdpFlow): void {
    this.flows.delete(f.key);
    f.socket.close();
    this.counters.closed++;
  }

  private sweep(): void {
    const cutoff = Date.now() - this.idleTimeoutMs;
    for (const f of [...this.flows.values()]) if (f.lastActive < cutoff) this.closeFlow(f);
  }

  flowStats(): FlowStats[] {
    return [...this.flows.values()].map((f) => ({
      protocol: "udp" as const,
      guest: `${ipv4ToString(f.guestIp)}:${f.guestPort}`,
      remote: "*",
      state: "OPEN",
      bytesFromGuest: f.bytesFromGuest,
      bytesToGuest: f.bytesToGuest,
    }));
  }

  close(): void {
    clearInterval(this.sweeper);
    this.dialled.clear();
    for (const f of [...this.flows.values()]) this.closeFlow(f);
  }
}
