/**
 * ICMP echo to the world: a guest's ping to an address beyond the gateway leaves through a raw
 * ICMP socket of the host (root only: CAP_NET_RAW) with an identifier of the relay's own, and the
 * reply comes back to the guest with the guest's identifier and the sequence untouched. The
 * egress policy decides as for TCP and UDP (a rule naming no protocol covers ICMP too). Without
 * the privilege, echo is counted as not relayed, once logged. Mappings are bounded and expire.
 */
import type { Clock, Logger, Timer } from "@desktopd/core";
import type { ResolvedNetwork } from "../config.js";
import type { DropCounters } from "../counters.js";
import type { EgressPolicy } from "../egress.js";
import { type Ipv4Ids, icmpFrame } from "../iface/frames.js";
import type { Link } from "../iface/link.js";
import type { NeighbourTable } from "../iface/neighbours.js";
import { RawIcmpSocket } from "../transport/icmp-socket.js";
import { ipv4ToString } from "../wire/address.js";
import {
  emitIcmpv4,
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  ICMP_HEADER_LEN,
  type IcmpPacket,
  parseIcmpv4,
} from "../wire/icmpv4.js";
import { IPPROTO_ICMP, type Ipv4Packet, parseIpv4 } from "../wire/ipv4.js";

export interface IcmpRelayOptions {
  /**
   * Relay echo beyond the gateway (default false: a library sends nothing to the world unless
   * told to; it needs CAP_NET_RAW). desktopd turns it on.
   */
  enabled?: boolean;
  /** A guest identifier unused this long is forgotten (default 30 s). */
  idleTimeoutMs?: number;
  /** Identifiers mapped at once, all guests (default 1024). */
  maxMappings?: number;
}

interface Mapping {
  guestIp: number;
  guestId: number;
  dst: number;
  hostId: number;
  lastUsed: number;
}

export class IcmpEchoRelay {
  readonly counters = { requests: 0, replies: 0, denied: 0, unavailable: 0 };
  private socket: RawIcmpSocket | undefined;
  private opening: Promise<RawIcmpSocket | undefined> | undefined;
  private unavailable: string | undefined;
  private readonly byHostId = new Map<number, Mapping>();
  private readonly byGuest = new Map<string, Mapping>();
  private sweeper: Timer | undefined;
  private closed = false;
  private readonly idleMs: number;
  private readonly max: number;
  private nextId: number;

  constructor(
    private readonly net: ResolvedNetwork,
    private readonly neighbours: NeighbourTable,
    private readonly link: Link,
    private readonly drops: DropCounters,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly egress: EgressPolicy,
    private readonly ids: Ipv4Ids,
    o: IcmpRelayOptions = {},
  ) {
    if (o.enabled !== true) this.unavailable = "turned off";
    this.idleMs = o.idleTimeoutMs ?? 30_000;
    this.max = o.maxMappings ?? 1024;
    this.nextId = 1 + Math.floor(Math.random() * 0xfffe);
  }

  get available(): boolean {
    return this.unavailable === undefined;
  }

  /** A guest's echo request to `ip.dst`, beyond the gateway. */
  relay(ip: Ipv4Packet, icmp: IcmpPacket): void {
    if (this.unavailable !== undefined || this.closed) {
      this.drops.count("icmp-echo-not-relayed");
      return;
    }
    const verdict = this.egress.check({
      protocol: "icmp",
      guestIp: ip.src,
      guestPort: 0,
      dstIp: ip.dst,
      dstPort: 0,
    });
    if (!verdict.allowed) {
      this.counters.denied++;
      this.drops.count("icmp-echo-egress-denied");
      return;
    }
    const mapping = this.map(ip.src, icmp.rest >>> 16, ip.dst);
    if (!mapping) {
      this.drops.count("icmp-echo-mappings-full");
      return;
    }
    const message = Buffer.alloc(ICMP_HEADER_LEN + icmp.payload.length);
    emitIcmpv4(message, 0, {
      type: ICMP_ECHO_REQUEST,
      code: 0,
      rest: ((mapping.hostId << 16) | (icmp.rest & 0xffff)) >>> 0,
      payload: icmp.payload,
    });
    this.counters.requests++;
    const send = (s: RawIcmpSocket | undefined) => {
      if (s && !s.send(ip.dst, message)) this.drops.count("icmp-echo-send-failed");
    };
    if (this.socket) send(this.socket);
    else void this.open().then(send);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sweeper?.cancel();
    const s = this.socket ?? (await this.opening);
    this.socket = undefined;
    await s?.close();
  }

  private open(): Promise<RawIcmpSocket | undefined> {
    this.opening ??= RawIcmpSocket.open().then(
      (s) => {
        if (this.closed) {
          void s.close();
          return undefined;
        }
        this.socket = s;
        s.receive(
          (packet) => this.onHostPacket(packet),
          (error) => {
            this.unavailable = error.message;
            this.log.warn({ err: error.message }, "ICMP echo relay stopped");
          },
        );
        this.sweep();
        return s;
      },
      (error: Error) => {
        this.unavailable = error.message;
        this.counters.unavailable++;
        this.log.info(
          { err: error.message },
          "ICMP echo beyond the gateway is not relayed (a raw socket needs root / CAP_NET_RAW)",
        );
        return undefined;
      },
    );
    return this.opening;
  }

  private map(guestIp: number, guestId: number, dst: number): Mapping | undefined {
    const key = `${guestIp}/${guestId}/${dst}`;
    const now = this.clock.now();
    const known = this.byGuest.get(key);
    if (known) {
      known.lastUsed = now;
      return known;
    }
    if (this.byHostId.size >= this.max) return undefined;
    // Identifiers in use are skipped; with at most `max` mapped, a free one is near.
    let hostId = this.nextId;
    while (this.byHostId.has(hostId)) hostId = (hostId % 0xffff) + 1;
    this.nextId = (hostId % 0xffff) + 1;
    const m: Mapping = { guestIp, guestId, dst, hostId, lastUsed: now };
    this.byHostId.set(hostId, m);
    this.byGuest.set(key, m);
    return m;
  }

  /** Every ICMP packet the host receives passes here: only replies to our identifiers go on. */
  private onHostPacket(packet: Buffer): void {
    let ip: Ipv4Packet;
    let icmp: IcmpPacket;
    try {
      ip = parseIpv4(packet, { verifyChecksum: false });
      if (ip.protocol !== IPPROTO_ICMP) return;
      icmp = parseIcmpv4(ip.payload);
    } catch {
      return;
    }
    if (icmp.type !== ICMP_ECHO_REPLY) return;
    const m = this.byHostId.get(icmp.rest >>> 16);
    // Another process's ping, or a reply from elsewhere than where the guest pinged.
    if (!m || m.dst !== ip.src) return;
    const dstMac = this.neighbours.lookup(m.guestIp);
    if (!dstMac) return;
    m.lastUsed = this.clock.now();
    this.counters.replies++;
    this.link.send(
      icmpFrame(
        { srcMac: this.net.gatewayMac, dstMac, srcIp: m.dst, dstIp: m.guestIp, ids: this.ids },
        {
          type: ICMP_ECHO_REPLY,
          code: 0,
          rest: ((m.guestId << 16) | (icmp.rest & 0xffff)) >>> 0,
          payload: icmp.payload,
        },
      ),
    );
  }

  private sweep(): void {
    if (this.closed) return;
    const now = this.clock.now();
    for (const [hostId, m] of this.byHostId) {
      if (now - m.lastUsed < this.idleMs) continue;
      this.byHostId.delete(hostId);
      this.byGuest.delete(`${m.guestIp}/${m.guestId}/${m.dst}`);
    }
    this.sweeper = this.clock.setTimer(() => this.sweep(), Math.min(this.idleMs, 10_000));
  }

  /** For logs: the destinations guests are pinging now. */
  describe(): string[] {
    return [...this.byHostId.values()].map((m) => `${ipv4ToString(m.guestIp)} -> ${ipv4ToString(m.dst)}`);
  }
}
