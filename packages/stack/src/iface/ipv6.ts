/**
 * IPv6 on the guest link, the router's side: a link-local address and a ULA prefix (Docker
 * Desktop's fdc4:f303:9324::/64 by default), router advertisements for SLAAC (on a guest's
 * solicitation and every few minutes), neighbour discovery for the gateway's and the host's
 * addresses with a guarded table of the guests', and echo for both addresses. TCP and UDP go
 * to the same transport layers as IPv4's (`IpOutput` is implemented here for their replies);
 * what cannot be carried is refused at once with ICMPv6 "no route", so a dual-stack client
 * falls back rather than wait. A guest may not claim the router's addresses, nor another
 * guest's, nor advertise itself as a router: such messages are counted and dropped.
 */
import type { Clock, Timer } from "@desktopd/core";
import type { DropCounters } from "../counters.js";
import { ConfigError } from "../errors.js";
import type { IcmpEchoRelay } from "../nat/icmp-relay.js";
import type { TcpFlowTable } from "../nat/tcp-table.js";
import type { UdpNat } from "../nat/udp.js";
import { ETH_HEADER_LEN, ETHERTYPE_IPV6, emitEthernetHeader } from "../wire/ethernet.js";
import {
  emitIcmpv6Error,
  emitIcmpv6Packet,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  linkLayerOption,
  NA_OVERRIDE,
  NA_ROUTER,
  NA_SOLICITED,
  ND_NEIGHBOR_ADVERT,
  ND_NEIGHBOR_SOLICIT,
  ND_ROUTER_ADVERT,
  ND_ROUTER_SOLICIT,
  neighborAdvertBody,
  neighborSolicitBody,
  OPT_SOURCE_LL,
  OPT_TARGET_LL,
  parseIcmpv6,
  parseNeighborMessage,
  parseRouterSolicit,
  routerAdvertBody,
  UNREACH_ADDRESS,
  UNREACH_ADMIN_PROHIBITED,
  UNREACH_BEYOND_SCOPE,
  UNREACH_NO_ROUTE,
  UNREACH_PORT,
} from "../wire/icmpv6.js";
import type { IpAddr } from "../wire/ip-addr.js";
import {
  addressSum6,
  emitIpv6Header,
  IPV6_HEADER_LEN,
  type Ipv6Packet,
  ipv6ToString,
  isLinkLocal6,
  isMulticast6,
  isUnspecified6,
  linkLocalFromMac,
  multicastMac6,
  NEXT_ICMPV6,
  NEXT_TCP,
  NEXT_UDP,
  parseIpv6,
  parseIpv6Address,
  solicitedNode,
} from "../wire/ipv6.js";
import { type Payload, payloadLength } from "../wire/payload.js";
import { Ipv6Reassembler } from "../wire/reassembly.js";
import { parseTcpWith, type TcpEmitFields } from "../wire/tcp.js";
import { parseUdpWith } from "../wire/udp.js";
import { ExpiryTimer } from "./expiry-timer.js";
import { TCP6_FRAME_L4_OFFSET, tcp6Frame, tcp6Headers, udp6Frames } from "./frames6.js";
import {
  type FlowOwner,
  type IpHeader,
  type IpOutput,
  tcpOffloadMeta,
  type Unreachable,
} from "./ip-output.js";
import type { Link } from "./link.js";
import { NeighbourTable } from "./neighbours.js";
import { ICMP_ERROR_BURST, ICMP_ERRORS_PER_SECOND, KeyedTokenBuckets } from "./token-bucket.js";

export interface Ipv6Options {
  /** The guests' prefix, a /64 (default "fdc4:f303:9324::/64", as Docker Desktop). */
  prefix?: string;
  /** The gateway's address in it (default ::1 of the prefix). */
  gateway?: string;
  /** The host's address in it, answered like the gateway's (default ::254 of the prefix). */
  hostAddress?: string;
  /** Seconds between unsolicited router advertisements (default 200). */
  advertiseIntervalSeconds?: number;
  /**
   * Advertise the gateway's IPv6 address as the guests' DNS server (RDNSS, RFC 8106); set it when
   * the stack's policy serves DNS there (default false).
   */
  advertiseDns?: boolean;
}

export interface Ipv6Config {
  prefix: string;
  gateway: string;
  gatewayLinkLocal: string;
  hostAddress: string;
}

export interface Ipv6Counters {
  routerAdvertisements: number;
  routerSolicitations: number;
  neighborSolicitationsAnswered: number;
  echoAnswered: number;
  /** Packets refused with "no route": link-local destinations not ours, protocols not carried. */
  refusedNoRoute: number;
  neighbours: number;
  /** Guest addresses forgotten because their NIC used more than 64: address hopping. */
  addressesOverLimit: number;
}

/** Where IPv6 TCP, UDP and echo beyond the router go once parsed: the layers IPv4 shares. */
export interface Ipv6Upper {
  tcp: TcpFlowTable;
  udp: UdpNat;
  relay?: IcmpEchoRelay;
}

/** A received packet as the transport layers see it, with what an ICMPv6 error would quote. */
interface Ipv6Header extends IpHeader {
  readonly src: string;
  readonly dst: string;
  readonly raw: Buffer;
}

const UNREACHABLE_CODE: Record<Unreachable, number> = {
  net: UNREACH_NO_ROUTE,
  host: UNREACH_ADDRESS,
  port: UNREACH_PORT,
  admin: UNREACH_ADMIN_PROHIBITED,
};
/** Texts of addresses the router sends to, parsed once: bounded, cleared when full. */
const MAX_PARSED = 4096;

export const DEFAULT_IPV6_PREFIX = "fdc4:f303:9324::/64";
const ALL_NODES = parseIpv6Address("ff02::1")!;
const ALL_ROUTERS = parseIpv6Address("ff02::2")!;
/** Most guest addresses remembered (each a few bytes); the oldest goes first. */
const MAX_NEIGHBOURS = 4096;
/**
 * Most addresses one guest NIC holds (SLAAC, temporary and static ones are a handful): one that
 * hops addresses only pushes out its own.
 */
const MAX_ADDRESSES_PER_GUEST = 64;
const ROUTER_LIFETIME_S = 1800;
const VALID_LIFETIME_S = 86_400;
const PREFERRED_LIFETIME_S = 14_400;
/** RFC 4861 §10: advertisements to all nodes are at least this far apart. */
const MIN_DELAY_BETWEEN_RAS_MS = 3000;

function resolvePrefix(text: string): Buffer {
  const m = /^([0-9a-fA-F:]+)\/64$/.exec(text.trim());
  const prefix = m ? parseIpv6Address(m[1]!) : undefined;
  if (!prefix?.subarray(8).equals(Buffer.alloc(8))) {
    throw new ConfigError(
      `ipv6 prefix: "${text}" is not a /64 without host bits (e.g. ${DEFAULT_IPV6_PREFIX})`,
    );
  }
  return prefix;
}

function inPrefix(prefix: Buffer, address: string, name: string): Buffer {
  const a = parseIpv6Address(address);
  if (!a?.subarray(0, 8).equals(prefix.subarray(0, 8))) {
    throw new ConfigError(`ipv6 ${name}: "${address}" is not an address of ${ipv6ToString(prefix)}/64`);
  }
  return a;
}

function withHost(prefix: Buffer, last: number): Buffer {
  const a = Buffer.from(prefix);
  a.writeUInt16BE(last, 14);
  return a;
}

export class Ipv6Interface implements IpOutput {
  readonly config: Ipv6Config;
  readonly counters: Ipv6Counters = {
    routerAdvertisements: 0,
    routerSolicitations: 0,
    neighborSolicitationsAnswered: 0,
    echoAnswered: 0,
    refusedNoRoute: 0,
    neighbours: 0,
    addressesOverLimit: 0,
  };
  private readonly prefix: Buffer;
  private readonly gateway: Buffer;
  private readonly linkLocal: Buffer;
  private readonly host: Buffer;
  /** The router's own addresses, by their hex: what it answers ND and echo for. */
  private readonly own: Set<string>;
  /** Guest addresses (text) → MAC, from their ND messages and packets, with the source guard. */
  private readonly neighbours: NeighbourTable<string>;
  private upper: Ipv6Upper | undefined;
  private readonly parsed = new Map<string, Buffer>();
  /** The last source and destination seen, and their texts: a flow's packets repeat them. */
  /** ICMPv6 errors and solicited advertisements per guest MAC (RFC 4443 §2.4 (f)). */
  private readonly icmpErrors: KeyedTokenBuckets;
  /** When an advertisement last answered a solicitation from the unspecified address. */
  private lastMulticastAnswer = Number.NEGATIVE_INFINITY;
  /** Text of the last source and destination seen: a stream of packets repeats them. */
  private readonly srcText = lastTextOf();
  private readonly dstText = lastTextOf();
  private fragmentId = 0;
  /** Fragmented guest datagrams (large UDP), bounded as IPv4's. */
  readonly reassembler: Ipv6Reassembler;
  private readonly reassemblyTimer: ExpiryTimer;
  private timer: Timer | undefined;
  private stopped = false;
  private readonly advertiseDns: boolean;
  /** Whether any guest spoke IPv6: an IPv4-only link is not sent advertisements it would ignore. */
  private heard = false;

  constructor(
    private readonly gatewayMac: Buffer,
    private readonly mtu: number,
    private readonly link: Link,
    private readonly drops: DropCounters,
    private readonly clock: Clock,
    private readonly verify: boolean,
    o: Ipv6Options = {},
    guard = true,
  ) {
    this.icmpErrors = new KeyedTokenBuckets(clock, ICMP_ERRORS_PER_SECOND, ICMP_ERROR_BURST);
    this.neighbours = new NeighbourTable<string>({
      guard,
      limit: MAX_NEIGHBOURS,
      perMacLimit: MAX_ADDRESSES_PER_GUEST,
    });
    this.reassembler = new Ipv6Reassembler({ clock });
    this.reassemblyTimer = new ExpiryTimer(clock, this.reassembler);
    this.advertiseDns = o.advertiseDns === true;
    this.prefix = resolvePrefix(o.prefix ?? DEFAULT_IPV6_PREFIX);
    this.gateway = o.gateway ? inPrefix(this.prefix, o.gateway, "gateway") : withHost(this.prefix, 1);
    this.host = o.hostAddress
      ? inPrefix(this.prefix, o.hostAddress, "hostAddress")
      : withHost(this.prefix, 0x254);
    if (this.gateway.equals(this.host)) throw new ConfigError("ipv6 gateway and hostAddress must differ");
    this.linkLocal = linkLocalFromMac(gatewayMac);
    this.own = new Set([this.gateway, this.host, this.linkLocal].map((a) => a.toString("hex")));
    this.config = {
      prefix: `${ipv6ToString(this.prefix)}/64`,
      gateway: ipv6ToString(this.gateway),
      gatewayLinkLocal: ipv6ToString(this.linkLocal),
      hostAddress: ipv6ToString(this.host),
    };
    const every = (o.advertiseIntervalSeconds ?? 200) * 1000;
    const tick = () => {
      if (this.stopped) return;
      if (this.link.transport && this.heard) this.advertise(ALL_NODES, multicastMac6(ALL_NODES));
      this.timer = this.clock.setTimer(tick, every);
    };
    this.timer = this.clock.setTimer(tick, every);
  }

  /** Whether a frame to this Ethernet multicast address may be for the router (ND groups). */
  acceptsMulticastMac(mac: Buffer): boolean {
    return mac[0] === 0x33 && mac[1] === 0x33;
  }

  deliverTo(upper: Ipv6Upper): void {
    this.upper = upper;
  }

  /** The guests' addresses seen through ND and their packets, as text. */
  guestNeighbours(): { address: string; mac: string }[] {
    return this.neighbours.list();
  }

  /**
   * Whether a guest answers for `address` (neighbour discovery, for connections the stack
   * dials): solicits it once a second until it does, for at most 3 s.
   */
  async resolve(address: string, timeoutMs: number, stopped: () => boolean): Promise<boolean> {
    const target = this.bytes(address);
    const deadline = this.clock.now() + Math.min(timeoutMs, 3_000);
    let nextSolicit = 0;
    while (!this.neighbours.lookup(address)) {
      const now = this.clock.now();
      if (now >= deadline || stopped()) return false;
      if (now >= nextSolicit) {
        nextSolicit = now + 1_000;
        const group = solicitedNode(target);
        const from = isLinkLocal6(target) ? this.linkLocal : this.gateway;
        this.send(
          multicastMac6(group),
          emitIcmpv6Packet(from, group, ND_NEIGHBOR_SOLICIT, 0, neighborSolicitBody(target, this.gatewayMac)),
        );
      }
      await new Promise<void>((r) => this.clock.setTimer(r, 100));
    }
    return true;
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.reassemblyTimer.stop();
  }

  /** `checksumPartial`: the link says the guest left TCP/UDP checksums for offload (virtio-net). */
  onPacket(packet: Buffer, srcMac: Buffer, checksumPartial = false): void {
    const p = parseIpv6(packet);
    this.heard = true;
    if (isMulticast6(p.src)) {
      this.drops.count("ipv6-multicast-source");
      return;
    }
    if (isMulticast6(p.dst)) {
      const wanted =
        p.dst.equals(ALL_NODES) ||
        p.dst.equals(ALL_ROUTERS) ||
        p.dst.equals(solicitedNode(this.gateway)) ||
        p.dst.equals(solicitedNode(this.host)) ||
        p.dst.equals(solicitedNode(this.linkLocal));
      if (!wanted || p.protocol !== NEXT_ICMPV6) {
        // MLD reports and groups of other nodes: nothing a router of one link must act on.
        this.drops.count("ipv6-multicast");
        return;
      }
      this.onIcmpv6(packet, p, false, srcMac);
      return;
    }
    const forUs = this.isOwn(p.dst);
    if (p.fragment) {
      // A fragment's source is checked before it may take room in the reassembly bounds, which all
      // guests share: a guest spoofing sources cannot crowd out another's fragmented datagrams.
      if (!this.sourceAllowed(p, forUs, srcMac)) return;
      const whole = this.reassembler.push(p, srcMac.readUIntBE(0, 6));
      this.reassemblyTimer.arm();
      if (!whole) return;
      this.onReassembled(whole, srcMac, forUs);
      return;
    }
    this.onUnfragmented(packet, p, srcMac, forUs, checksumPartial);
  }

  /** A reassembled datagram, as one packet without a fragment header (what errors quote). */
  private onReassembled(p: Ipv6Packet, srcMac: Buffer, forUs: boolean): void {
    const packet = Buffer.allocUnsafe(IPV6_HEADER_LEN + p.payload.length);
    emitIpv6Header(packet, 0, {
      src: p.src,
      dst: p.dst,
      protocol: p.protocol,
      payloadLength: p.payload.length,
      hopLimit: p.hopLimit,
      trafficClass: p.trafficClass,
    });
    p.payload.copy(packet, IPV6_HEADER_LEN);
    // Neighbour discovery in fragments is ignored (RFC 6980): it may hide from RA guards.
    if (p.protocol === NEXT_ICMPV6 && p.payload[0]! >= ND_ROUTER_SOLICIT && p.payload[0]! <= 137) {
      this.drops.count("ndp-fragmented");
      return;
    }
    this.onUnfragmented(packet, parseIpv6(packet), srcMac, forUs, false);
  }

  private onUnfragmented(
    packet: Buffer,
    p: Ipv6Packet,
    srcMac: Buffer,
    forUs: boolean,
    checksumPartial: boolean,
  ): void {
    if (p.protocol === NEXT_ICMPV6) {
      this.onIcmpv6(packet, p, forUs, srcMac);
      return;
    }
    if (p.protocol !== NEXT_TCP && p.protocol !== NEXT_UDP) {
      this.refuse(packet, p, srcMac);
      return;
    }
    if (isLinkLocal6(p.dst) && !forUs) {
      this.refuse(packet, p, srcMac);
      return;
    }
    if (isLinkLocal6(p.src) && !isLinkLocal6(p.dst)) {
      // A link-local source cannot be answered from beyond the link: say so, so the guest's
      // connect fails at once (a guest whose global address is still tentative picks one).
      this.drops.count("ipv6-src-beyond-scope");
      if (!this.errorAllowed(srcMac)) return;
      this.send(
        srcMac,
        emitIcmpv6Error(
          this.linkLocal,
          p.src,
          ICMPV6_DEST_UNREACHABLE,
          UNREACH_BEYOND_SCOPE,
          packet.subarray(0, p.headerLength + p.payload.length),
        ),
      );
      return;
    }
    const upper = this.upper;
    if (!upper || !this.sourceAllowed(p, forUs, srcMac)) return;
    const header: Ipv6Header = {
      src: this.srcText(p.src),
      dst: this.dstText(p.dst),
      raw: packet.subarray(0, p.headerLength + p.payload.length),
    };
    // A partial checksum (guest offload) is vouched for by the guest's kernel, as for IPv4.
    const verify = this.verify && !checksumPartial;
    const sum = addressSum6(p.src, p.dst);
    if (p.protocol === NEXT_TCP) {
      upper.tcp.onSegment(header, parseTcpWith(p.payload, sum, { verifyChecksum: verify }));
      return;
    }
    // The checksum is mandatory over IPv6 (RFC 8200 §8.1).
    const udp = parseUdpWith(p.payload, sum, { verifyChecksum: verify, checksumRequired: true });
    upper.udp.onDatagram(header, udp);
  }

  /**
   * A guest's TCP or UDP source: one of its own global addresses (a link-local one only to the
   * router's link-local address), never the router's, never one another MAC holds.
   */
  private sourceAllowed(p: Ipv6Packet, forUs: boolean, srcMac: Buffer): boolean {
    const src = p.src;
    if (isUnspecified6(src)) {
      this.drops.count("ipv6-src-unspecified");
      return false;
    }
    if (
      isLinkLocal6(src)
        ? !(forUs && isLinkLocal6(p.dst))
        : !src.subarray(0, 8).equals(this.prefix.subarray(0, 8))
    ) {
      this.drops.count("ipv6-src-not-in-prefix");
      return false;
    }
    if (this.isOwn(src)) {
      this.drops.count("ipv6-src-router");
      return false;
    }
    if (!this.neighbours.admit(this.srcText(src), srcMac, this.clock.now())) {
      this.drops.count("ipv6-src-spoofed");
      return false;
    }
    this.counters.neighbours = this.neighbours.size;
    this.counters.addressesOverLimit = this.neighbours.evictedOverMacLimit;
    return true;
  }

  private onIcmpv6(packet: Buffer, p: Ipv6Packet, forUs: boolean, srcMac: Buffer): void {
    const m = parseIcmpv6(p.payload, p.src, p.dst, this.verify);
    switch (m.type) {
      case ND_NEIGHBOR_SOLICIT:
        this.onNeighborSolicit(p.src, p.hopLimit, m.body, srcMac);
        return;
      case ND_NEIGHBOR_ADVERT:
        this.onNeighborAdvert(p.hopLimit, m.body, srcMac);
        return;
      case ND_ROUTER_SOLICIT:
        this.onRouterSolicit(p.src, p.hopLimit, m.body, srcMac);
        return;
      case ND_ROUTER_ADVERT:
        // Only the gateway routes here: a guest's advertisement would hijack the others.
        this.drops.count("ndp-router-advert-from-guest");
        return;
      case ICMPV6_ECHO_REQUEST:
        if (isMulticast6(p.dst)) {
          this.drops.count("ipv6-echo-multicast");
          return;
        }
        if (!forUs) {
          const relay = this.upper?.relay;
          if (!relay || isLinkLocal6(p.dst)) this.refuse(packet, p, srcMac);
          else if (m.body.length < 4) this.drops.count("icmpv6-echo-truncated");
          else if (this.sourceAllowed(p, false, srcMac)) {
            relay.relay(
              this.srcText(p.src),
              this.dstText(p.dst),
              m.body.readUInt16BE(0),
              m.body.readUInt16BE(2),
              m.body.subarray(4),
            );
          }
          return;
        }
        this.counters.echoAnswered++;
        this.send(srcMac, emitIcmpv6Packet(p.dst, p.src, ICMPV6_ECHO_REPLY, 0, m.body, 64));
        return;
      default:
        this.drops.count(`icmpv6-type-${m.type < 128 ? "error" : "other"}`);
    }
  }

  private isOwn(a: Buffer): boolean {
    return a.equals(this.gateway) || a.equals(this.host) || a.equals(this.linkLocal);
  }

  /** The bytes of an address the transport layers name by text. */
  private bytes(text: string): Buffer {
    let b = this.parsed.get(text);
    if (!b) {
      b = parseIpv6Address(text) ?? Buffer.alloc(16);
      if (this.parsed.size >= MAX_PARSED) this.parsed.clear();
      this.parsed.set(text, b);
    }
    return b;
  }

  // ---- Output (IpOutput) -----------------------------------------------------------------

  sendTcp(
    src: string,
    dst: string,
    fields: TcpEmitFields,
    payload: Payload | undefined,
    segmentSize?: number,
  ): void {
    const dstMac = this.neighbours.lookup(dst);
    if (!dstMac) {
      this.drops.count("tx-no-neighbour");
      return;
    }
    const route = { srcMac: this.gatewayMac, dstMac, src: this.bytes(src), dst: this.bytes(dst) };
    const plen = payload ? payloadLength(payload) : 0;
    const meta = tcpOffloadMeta(this.link.transport?.offload, TCP6_FRAME_L4_OFFSET, plen, segmentSize);
    if (meta && payload && this.link.scatters) {
      this.link.sendParts(tcp6Headers(route, fields, plen), payload, meta);
      return;
    }
    this.link.send(tcp6Frame(route, fields, payload, meta !== undefined), meta);
  }

  sendUdp(src: string, dst: string, srcPort: number, dstPort: number, payload: Buffer): void {
    const dstMac = this.neighbours.lookup(dst);
    if (!dstMac) {
      this.drops.count("tx-no-neighbour");
      return;
    }
    const route = { srcMac: this.gatewayMac, dstMac, src: this.bytes(src), dst: this.bytes(dst) };
    const nextId = () => {
      this.fragmentId = (this.fragmentId + 1) >>> 0;
      return this.fragmentId;
    };
    for (const f of udp6Frames(route, srcPort, dstPort, payload, this.mtu, nextId)) this.link.send(f);
  }

  sendUnreachable(src: string, dst: string, why: Unreachable, original: Buffer): void {
    const dstMac = this.neighbours.lookup(dst);
    if (!dstMac || !this.errorAllowed(dstMac)) return;
    this.send(
      dstMac,
      emitIcmpv6Error(
        this.bytes(src),
        this.bytes(dst),
        ICMPV6_DEST_UNREACHABLE,
        UNREACHABLE_CODE[why],
        original,
      ),
    );
  }

  /** A relayed echo reply from `from` back to the guest, with its own identifier and sequence. */
  readonly deliverRelayed = (guest: IpAddr, from: IpAddr, id: number, seq: number, payload: Buffer): void => {
    const dstMac = this.neighbours.lookup(guest as string);
    if (!dstMac) return;
    const body = Buffer.allocUnsafe(4 + payload.length);
    body.writeUInt16BE(id, 0);
    body.writeUInt16BE(seq, 2);
    payload.copy(body, 4);
    this.send(
      dstMac,
      emitIcmpv6Packet(
        this.bytes(from as string),
        this.bytes(guest as string),
        ICMPV6_ECHO_REPLY,
        0,
        body,
        64,
      ),
    );
  };

  quote(packet: IpHeader): Buffer {
    const raw = (packet as Ipv6Header).raw;
    // At most what an ICMPv6 error carries (emitIcmpv6Error cuts it there too), in a buffer of its own.
    return Buffer.from(raw.subarray(0, Math.min(raw.length, 1280 - 48)));
  }

  ownerOf(packet: IpHeader): FlowOwner {
    // The source guard admitted the sender's MAC for this address a moment ago; a guest may
    // use any number of addresses, all of them one owner.
    return this.neighbours.macKeyOf(packet.src as string) ?? packet.src;
  }

  private onNeighborSolicit(src: Buffer, hopLimit: number, body: Buffer, srcMac: Buffer): void {
    if (hopLimit !== 255) {
      this.drops.count("ndp-hop-limit");
      return;
    }
    const ns = parseNeighborMessage(body);
    const sourceLl = linkLayerOption(ns.options, OPT_SOURCE_LL);
    if (isUnspecified6(src)) {
      if (sourceLl) {
        this.drops.count("ndp-malformed");
        return;
      }
      // Duplicate address detection: a guest trying one of ours is told it is taken.
      if (this.own.has(ns.target.toString("hex"))) {
        this.counters.neighborSolicitationsAnswered++;
        this.send(
          multicastMac6(ALL_NODES),
          emitIcmpv6Packet(
            ns.target,
            ALL_NODES,
            ND_NEIGHBOR_ADVERT,
            0,
            neighborAdvertBody(ns.target, this.gatewayMac, NA_ROUTER | NA_OVERRIDE),
          ),
        );
      }
      return;
    }
    if (sourceLl) this.learn(src, sourceLl, srcMac);
    if (!this.own.has(ns.target.toString("hex"))) {
      // Another guest's address: guests on the switch answer for themselves.
      this.drops.count("ndp-not-ours");
      return;
    }
    this.counters.neighborSolicitationsAnswered++;
    const flags = NA_ROUTER | NA_SOLICITED | NA_OVERRIDE;
    this.send(
      sourceLl ?? srcMac,
      emitIcmpv6Packet(
        ns.target,
        src,
        ND_NEIGHBOR_ADVERT,
        0,
        neighborAdvertBody(ns.target, this.gatewayMac, flags),
      ),
    );
  }

  private onNeighborAdvert(hopLimit: number, body: Buffer, srcMac: Buffer): void {
    if (hopLimit !== 255) {
      this.drops.count("ndp-hop-limit");
      return;
    }
    const na = parseNeighborMessage(body);
    if (this.own.has(na.target.toString("hex"))) {
      this.drops.count("ndp-claims-router-address");
      return;
    }
    const mac = linkLayerOption(na.options, OPT_TARGET_LL);
    if (mac && !isMulticast6(na.target)) this.learn(na.target, mac, srcMac);
  }

  private onRouterSolicit(src: Buffer, hopLimit: number, body: Buffer, srcMac: Buffer): void {
    if (hopLimit !== 255) {
      this.drops.count("ndp-hop-limit");
      return;
    }
    const options = parseRouterSolicit(body);
    this.counters.routerSolicitations++;
    const sourceLl = linkLayerOption(options, OPT_SOURCE_LL);
    if (sourceLl && !isUnspecified6(src)) this.learn(src, sourceLl, srcMac);
    // To the soliciting host when it has an address (RFC 4861 §6.2.6 allows it), else to all
    // nodes, and those at most once every MIN_DELAY_BETWEEN_RAS (3 s, a MUST of the same section).
    if (isUnspecified6(src)) {
      const now = this.clock.now();
      if (now - this.lastMulticastAnswer < MIN_DELAY_BETWEEN_RAS_MS) {
        this.drops.count("ndp-ra-rate-limited");
        return;
      }
      this.lastMulticastAnswer = now;
      this.advertise(ALL_NODES, multicastMac6(ALL_NODES));
    } else if (this.errorAllowed(srcMac, "ndp-ra-rate-limited")) this.advertise(src, sourceLl ?? srcMac);
  }

  /** Whether an answer the guest provoked may go to `mac` now (see `icmpErrors`); counts a refusal. */
  private errorAllowed(mac: Buffer, reason = "icmpv6-error-rate-limited"): boolean {
    if (this.icmpErrors.take(mac.toString("hex"))) return true;
    this.drops.count(reason);
    return false;
  }

  private advertise(dst: Buffer, dstMac: Buffer): void {
    this.counters.routerAdvertisements++;
    const body = routerAdvertBody({
      curHopLimit: 64,
      routerLifetime: ROUTER_LIFETIME_S,
      mac: this.gatewayMac,
      mtu: this.mtu,
      prefixes: [
        {
          prefix: this.prefix,
          length: 64,
          validLifetime: VALID_LIFETIME_S,
          preferredLifetime: PREFERRED_LIFETIME_S,
          autonomous: true,
          onLink: true,
        },
      ],
      ...(this.advertiseDns ? { dns: { servers: [this.gateway], lifetime: ROUTER_LIFETIME_S } } : {}),
    });
    this.send(dstMac, emitIcmpv6Packet(this.linkLocal, dst, ND_ROUTER_ADVERT, 0, body));
  }

  /** A packet the router cannot carry: "no route", quoting it, so the guest gives up at once. */
  private refuse(packet: Buffer, p: Ipv6Packet, srcMac: Buffer): void {
    if (isUnspecified6(p.src) || isMulticast6(p.dst)) {
      this.drops.count("ipv6-unroutable");
      return;
    }
    this.counters.refusedNoRoute++;
    this.drops.count(
      p.protocol === NEXT_TCP || p.protocol === NEXT_UDP
        ? "ipv6-link-local-destination"
        : p.protocol === NEXT_ICMPV6
          ? "ipv6-echo-not-relayed"
          : "ipv6-protocol-not-carried",
    );
    if (!this.errorAllowed(srcMac)) return;
    // From the gateway's address in the guest's scope: link-local answers link-local.
    const from = isLinkLocal6(p.src) ? this.linkLocal : this.gateway;
    this.send(
      srcMac,
      emitIcmpv6Error(
        from,
        p.src,
        ICMPV6_DEST_UNREACHABLE,
        UNREACH_NO_ROUTE,
        packet.subarray(0, p.headerLength + p.payload.length),
      ),
    );
  }

  /** What ND says of a guest address, under the same guard as its packets. */
  private learn(address: Buffer, mac: Buffer, frameMac: Buffer): void {
    // A guest speaks for its own NIC only: an option naming another MAC, or an address outside
    // the link's scope and prefix, would let it fill the table with entries charged to others.
    if (!mac.subarray(0, 6).equals(frameMac.subarray(0, 6))) {
      this.drops.count("ndp-mac-mismatch");
      return;
    }
    if (!isLinkLocal6(address) && !address.subarray(0, 8).equals(this.prefix.subarray(0, 8))) {
      this.drops.count("ndp-address-not-in-prefix");
      return;
    }
    if (this.isOwn(address)) {
      this.drops.count("ndp-claims-router-address");
      return;
    }
    if (!this.neighbours.admit(ipv6ToString(address), mac, this.clock.now())) {
      this.drops.count("ndp-claims-guest-address");
      return;
    }
    this.counters.neighbours = this.neighbours.size;
    this.counters.addressesOverLimit = this.neighbours.evictedOverMacLimit;
  }

  private send(dstMac: Buffer, packet: Buffer): void {
    const frame = Buffer.alloc(ETH_HEADER_LEN + packet.length);
    emitEthernetHeader(frame, 0, dstMac, this.gatewayMac, ETHERTYPE_IPV6);
    packet.copy(frame, ETH_HEADER_LEN);
    this.link.send(frame);
  }
}

/** `ipv6ToString`, remembering the last address it was asked for (one 16-byte compare per hit). */
function lastTextOf(): (a: Buffer) => string {
  const last = Buffer.alloc(16);
  let text = ipv6ToString(last);
  return (a) => {
    if (!a.equals(last)) {
      a.copy(last);
      text = ipv6ToString(a);
    }
    return text;
  };
}
