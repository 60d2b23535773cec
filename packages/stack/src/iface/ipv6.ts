/**
 * IPv6 on the guest link, the router's side: a link-local address and a ULA prefix (Docker
 * Desktop's fdc4:f303:9324::/64 by default), router advertisements for SLAAC (on a guest's
 * solicitation and every few minutes), neighbour discovery for the gateway's and the host's
 * addresses with a cache of the guests', and echo for both addresses. Flows to other IPv6
 * destinations are refused at once with ICMPv6 "no route" — so a dual-stack client falls back
 * to IPv4 rather than wait — until NAT over IPv6 lands. A guest may not claim the router's
 * addresses nor advertise itself as a router: such messages are counted and dropped.
 */
import type { Clock, FlowInfo, FlowPolicy, Timer } from "@desktopd/core";
import type { DropCounters } from "../counters.js";
import { ConfigError } from "../errors.js";
import { finish, sum16 } from "../wire/checksum.js";
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
  OPT_SOURCE_LL,
  OPT_TARGET_LL,
  parseIcmpv6,
  parseNeighborMessage,
  parseRouterSolicit,
  routerAdvertBody,
  UNREACH_NO_ROUTE,
  UNREACH_PORT,
} from "../wire/icmpv6.js";
import {
  emitIpv6Header,
  IPV6_HEADER_LEN,
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
  pseudoHeaderSum6,
  solicitedNode,
} from "../wire/ipv6.js";
import type { Link } from "./link.js";

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
  /** Flows to IPv6 destinations refused with "no route" (no NAT over IPv6 yet). */
  refusedNoRoute: number;
  neighbours: number;
}

export const DEFAULT_IPV6_PREFIX = "fdc4:f303:9324::/64";
const ALL_NODES = parseIpv6Address("ff02::1")!;
const ALL_ROUTERS = parseIpv6Address("ff02::2")!;
/** Most guest addresses remembered (each a few bytes); the oldest goes first. */
const MAX_NEIGHBOURS = 4096;
const ROUTER_LIFETIME_S = 1800;
const VALID_LIFETIME_S = 86_400;
const PREFERRED_LIFETIME_S = 14_400;

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

export class Ipv6Interface {
  readonly config: Ipv6Config;
  readonly counters: Ipv6Counters = {
    routerAdvertisements: 0,
    routerSolicitations: 0,
    neighborSolicitationsAnswered: 0,
    echoAnswered: 0,
    refusedNoRoute: 0,
    neighbours: 0,
  };
  private readonly prefix: Buffer;
  private readonly gateway: Buffer;
  private readonly linkLocal: Buffer;
  private readonly host: Buffer;
  /** The router's own addresses, by their hex: what it answers ND and echo for. */
  private readonly own: Set<string>;
  /** Guest addresses (hex) → MAC, as their ND messages said. */
  private readonly neighbours = new Map<string, Buffer>();
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
    private readonly policy?: FlowPolicy,
  ) {
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

  /** The guests' addresses seen through ND, as text. */
  guestNeighbours(): { address: string; mac: string }[] {
    return [...this.neighbours].map(([hex, mac]) => ({
      address: ipv6ToString(Buffer.from(hex, "hex")),
      mac: [...mac].map((b) => b.toString(16).padStart(2, "0")).join(":"),
    }));
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
  }

  /** `checksumPartial`: the link says the guest left TCP/UDP checksums for offload (virtio-net). */
  onPacket(packet: Buffer, srcMac: Buffer, checksumPartial = false): void {
    const p = parseIpv6(packet);
    this.heard = true;
    if (isMulticast6(p.src)) {
      this.drops.count("ipv6-multicast-source");
      return;
    }
    const dstHex = p.dst.toString("hex");
    const forUs = this.own.has(dstHex);
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
    } else if (!forUs) {
      this.refuse(packet, p, srcMac);
      return;
    }
    if (p.fragment) {
      this.drops.count("ipv6-fragment");
      return;
    }
    if (p.protocol === NEXT_UDP && forUs) {
      this.onUdp(packet, p, srcMac, checksumPartial);
      return;
    }
    if (p.protocol !== NEXT_ICMPV6) {
      // TCP to the gateway's or the host's IPv6 address: not served over IPv6 yet.
      this.refuse(packet, p, srcMac);
      return;
    }
    const m = parseIcmpv6(p.payload, p.src, p.dst, this.verify);
    switch (m.type) {
      case ND_NEIGHBOR_SOLICIT:
        this.onNeighborSolicit(p.src, p.hopLimit, m.body, srcMac);
        return;
      case ND_NEIGHBOR_ADVERT:
        this.onNeighborAdvert(p.hopLimit, m.body);
        return;
      case ND_ROUTER_SOLICIT:
        this.onRouterSolicit(p.src, p.hopLimit, m.body, srcMac);
        return;
      case ND_ROUTER_ADVERT:
        // Only the gateway routes here: a guest's advertisement would hijack the others.
        this.drops.count("ndp-router-advert-from-guest");
        return;
      case ICMPV6_ECHO_REQUEST:
        if (!forUs) {
          this.drops.count("ipv6-echo-multicast");
          return;
        }
        this.counters.echoAnswered++;
        this.send(srcMac, emitIcmpv6Packet(p.dst, p.src, ICMPV6_ECHO_REPLY, 0, m.body, 64));
        return;
      default:
        this.drops.count(`icmpv6-type-${m.type < 128 ? "error" : "other"}`);
    }
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
    if (sourceLl) this.learn(src, sourceLl);
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

  private onNeighborAdvert(hopLimit: number, body: Buffer): void {
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
    if (mac && !isMulticast6(na.target)) this.learn(na.target, mac);
  }

  private onRouterSolicit(src: Buffer, hopLimit: number, body: Buffer, srcMac: Buffer): void {
    if (hopLimit !== 255) {
      this.drops.count("ndp-hop-limit");
      return;
    }
    const options = parseRouterSolicit(body);
    this.counters.routerSolicitations++;
    const sourceLl = linkLayerOption(options, OPT_SOURCE_LL);
    if (sourceLl && !isUnspecified6(src)) this.learn(src, sourceLl);
    // To the soliciting host when it has an address (RFC 4861 §6.2.6 allows it), else to all nodes.
    if (isUnspecified6(src)) this.advertise(ALL_NODES, multicastMac6(ALL_NODES));
    else this.advertise(src, sourceLl ?? srcMac);
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

  /** A flow the router cannot carry: "no route", quoting it, so the guest gives up at once. */
  private refuse(packet: Buffer, p: ReturnType<typeof parseIpv6>, srcMac: Buffer): void {
    if (isUnspecified6(p.src) || isMulticast6(p.dst)) {
      this.drops.count("ipv6-unroutable");
      return;
    }
    this.counters.refusedNoRoute++;
    this.drops.count(
      p.protocol === NEXT_TCP
        ? "ipv6-tcp-no-nat"
        : p.protocol === NEXT_UDP
          ? "ipv6-udp-no-nat"
          : "ipv6-no-nat",
    );
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

  /**
   * UDP to the router's addresses: what the stack's policy serves in-process (DNS on the
   * gateway), else "port unreachable". No NAT over IPv6 yet, so nothing goes to a host socket.
   */
  private onUdp(
    packet: Buffer,
    p: ReturnType<typeof parseIpv6>,
    srcMac: Buffer,
    checksumPartial: boolean,
  ): void {
    const u = p.payload;
    if (u.length < 8 || u.readUInt16BE(4) < 8 || u.readUInt16BE(4) > u.length) {
      this.drops.count("udp6-truncated");
      return;
    }
    const datagram = u.subarray(0, u.readUInt16BE(4));
    // The checksum is mandatory over IPv6 (RFC 8200 §8.1).
    if (
      this.verify &&
      !checksumPartial &&
      finish(
        pseudoHeaderSum6(p.src, p.dst, NEXT_UDP, datagram.length) + sum16(datagram, 0, datagram.length),
      ) !== 0
    ) {
      this.drops.count("udp6-checksum");
      return;
    }
    const flow: FlowInfo = {
      protocol: "udp",
      guestIp: ipv6ToString(p.src),
      guestPort: datagram.readUInt16BE(0),
      dstIp: ipv6ToString(p.dst),
      dstPort: datagram.readUInt16BE(2),
    };
    const decision = this.policy?.udp?.(flow);
    if (decision?.action !== "handle") {
      this.drops.count("udp6-port-unreachable");
      this.send(
        srcMac,
        emitIcmpv6Error(
          p.dst,
          p.src,
          ICMPV6_DEST_UNREACHABLE,
          UNREACH_PORT,
          packet.subarray(0, p.headerLength + p.payload.length),
        ),
      );
      return;
    }
    const src = Buffer.from(p.src);
    const dst = Buffer.from(p.dst);
    decision.handler(Buffer.from(datagram.subarray(8)), flow, (data) => {
      if (this.stopped) return;
      this.send(srcMac, udp6Packet(dst, src, flow.dstPort, flow.guestPort, data));
    });
  }

  private learn(address: Buffer, mac: Buffer): void {
    const key = address.toString("hex");
    if (this.own.has(key)) {
      this.drops.count("ndp-claims-router-address");
      return;
    }
    if (!this.neighbours.has(key) && this.neighbours.size >= MAX_NEIGHBOURS) {
      const oldest = this.neighbours.keys().next().value;
      if (oldest !== undefined) this.neighbours.delete(oldest);
    }
    this.neighbours.delete(key);
    this.neighbours.set(key, Buffer.from(mac));
    this.counters.neighbours = this.neighbours.size;
  }

  private send(dstMac: Buffer, packet: Buffer): void {
    const frame = Buffer.alloc(ETH_HEADER_LEN + packet.length);
    emitEthernetHeader(frame, 0, dstMac, this.gatewayMac, ETHERTYPE_IPV6);
    packet.copy(frame, ETH_HEADER_LEN);
    this.link.send(frame);
  }
}

/** An IPv6 packet carrying one UDP datagram, checksum filled. */
function udp6Packet(src: Buffer, dst: Buffer, srcPort: number, dstPort: number, data: Buffer): Buffer {
  const length = 8 + data.length;
  const packet = Buffer.alloc(IPV6_HEADER_LEN + length);
  emitIpv6Header(packet, 0, { src, dst, protocol: NEXT_UDP, payloadLength: length, hopLimit: 64 });
  packet.writeUInt16BE(srcPort, IPV6_HEADER_LEN);
  packet.writeUInt16BE(dstPort, IPV6_HEADER_LEN + 2);
  packet.writeUInt16BE(length, IPV6_HEADER_LEN + 4);
  data.copy(packet, IPV6_HEADER_LEN + 8);
  const sum = finish(
    pseudoHeaderSum6(src, dst, NEXT_UDP, length) + sum16(packet, IPV6_HEADER_LEN, packet.length),
  );
  // A computed zero is sent as 0xffff: zero means "no checksum", which IPv6 forbids.
  packet.writeUInt16BE(sum === 0 ? 0xffff : sum, IPV6_HEADER_LEN + 6);
  return packet;
}
