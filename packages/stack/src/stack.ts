import type { Duplex } from "node:stream";
import type { FlowPolicy, FrameMeta, FrameTransport } from "@desktopd/core";
import {
  type Clock,
  cryptoRandom,
  type Logger,
  type Now,
  type Random,
  silentLogger,
  systemClock,
  wallClock,
} from "@desktopd/core";
import { type NetworkOptions, type ResolvedNetwork, resolveNetwork } from "./config.js";
import { DropCounters, type FlowEntry, type StackCounters } from "./counters.js";
import { DhcpServer } from "./dhcp/server.js";
import { type Egress, type EgressOptions, EgressPolicy } from "./egress.js";
import { ConfigError, DialError, WireError } from "./errors.js";
import { Addressing } from "./iface/addressing.js";
import { ArpResponder } from "./iface/arp.js";
import { DhcpPort } from "./iface/dhcp.js";
import { IcmpEcho } from "./iface/icmp.js";
import { DualOutput } from "./iface/ip-output.js";
import { Ipv4Interface } from "./iface/ipv4.js";
import { type Ipv6Config, Ipv6Interface, type Ipv6Options } from "./iface/ipv6.js";
import { Link } from "./iface/link.js";
import { NeighbourTable } from "./iface/neighbours.js";
import { AddressMap } from "./nat/host-map.js";
import { IcmpEchoRelay, type IcmpRelayOptions } from "./nat/icmp-relay.js";
import { TcpFlowTable, type TcpOptions } from "./nat/tcp-table.js";
import { type GuestUdpSocket, UdpNat, type UdpOptions } from "./nat/udp.js";
import {
  ipv4ToString,
  isBroadcastMac,
  isMulticastMac,
  macToString,
  parseIpv4Address,
} from "./wire/address.js";
import {
  ETH_HEADER_LEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  parseEthernet,
} from "./wire/ethernet.js";
import type { IpAddr } from "./wire/ip-addr.js";
import { IPPROTO_TCP } from "./wire/ipv4.js";
import { ipv6ToString, parseIpv6Address } from "./wire/ipv6.js";

/**
 * Largest TCP payload of one super-frame to a TSO link: the IPv4 total length is 16 bits,
 * less 20 bytes of IP header and up to 60 of TCP header.
 */
const TSO_MAX_PAYLOAD = 0xffff - 20 - 60;

export interface StackOptions extends NetworkOptions {
  /** Per-flow hook: NAT to the host (default), an in-process handler, or reject. */
  policy?: FlowPolicy;
  logger?: Logger;
  clock?: Clock;
  /** For times people read (lease ends in `leases()`); default the system's. */
  wallClock?: Now;
  random?: Random;
  tcp?: TcpOptions;
  udp?: UdpOptions;
  /** Which destinations guests may reach through host sockets; see `Egress`. */
  egress?: EgressOptions;
  /**
   * Refuse frames whose source address belongs to another MAC — its DHCP lease or static entry,
   * or, for an address without one, the MAC that used it first (default true). The gateway's and
   * host's addresses can never be claimed, whatever this says.
   */
  sourceGuard?: boolean;
  /** Verify checksums of received packets (default true). */
  verifyChecksums?: boolean;
  /**
   * The IPv6 side: router advertisements of a ULA prefix for SLAAC, neighbour discovery and echo
   * for the gateway and host addresses (default on, fdc4:f303:9324::/64); `false` turns it off
   * and every IPv6 frame is counted as a drop.
   */
  ipv6?: Ipv6Options | false;
  /** ICMP echo to addresses beyond the gateway, through a raw socket of the host (root only; off unless `enabled`). */
  icmpRelay?: IcmpRelayOptions;
}

/** Addressing of the virtual network, for people and for guest configuration. */
export interface StackConfig {
  subnet: string;
  prefixLength: number;
  netmask: string;
  gateway: string;
  hostAddress: string;
  firstLease: string;
  mtu: number;
  gatewayMac: string;
  dnsServers: string[];
  searchDomains: string[];
  /** The IPv6 addressing, when IPv6 is on. */
  ipv6?: Ipv6Config;
}

export interface LeaseInfo {
  mac: string;
  ip: string;
  /** The guest's IPv6 addresses (SLAAC or static) seen on the link, when it has any. */
  ipv6?: string[];
  hostname?: string;
  expiresAt: number;
  static: boolean;
}

export interface DialOptions {
  /** Give up after this long (default 10 s). */
  timeoutMs?: number;
  /** What flow listings call the connection (default "dial"), e.g. "publish". */
  service?: string;
}

export interface Stack {
  readonly config: StackConfig;
  /** Egress rules: read and change them while the stack runs. */
  readonly egress: Egress;
  /** Plugs a guest NIC in. The stack owns the transport from now on and closes it on `close()`. */
  attach(transport: FrameTransport): void;
  addStaticLease(mac: string, ip: string, hostname?: string): void;
  leases(): LeaseInfo[];
  /**
   * Opens a TCP connection into the guest (IPv4 or IPv6 address), from the host address of that
   * family. Rejects with DialError.
   */
  connect(ip: string, port: number, options?: DialOptions): Promise<Duplex>;
  /** Opens a UDP socket into the guest, from the host address. */
  dialUdp(ip: string, port: number, options?: Pick<DialOptions, "service">): Promise<GuestUdpSocket>;
  counters(): StackCounters;
  /** Every open TCP and UDP flow, NATed, served in-process or dialled into a guest. */
  flows(): FlowEntry[];
  /**
   * The IPv6 addresses (not link-local) of the guest NIC that uses IPv4 address `ip`, as the
   * network saw it use them; empty when it has none or is unknown.
   */
  ipv6AddressesOf(ip: string): string[];
  close(): Promise<void>;
}

/**
 * Creates the userspace network stack: gateway with ARP, DHCP and ICMP echo, and NAT of
 * every guest TCP/UDP flow onto host sockets.
 */
export function createStack(options: StackOptions = {}): Stack {
  return new NetworkStack(options);
}

/**
 * The interface: it builds the per-protocol modules (ARP, IPv4 with reassembly, ICMP, DHCP, the
 * TCP flow table and the UDP NAT), filters frames by destination MAC, dispatches them by
 * ethertype, and sums the counters. The work happens in `iface/` and `nat/`.
 */
class NetworkStack implements Stack {
  readonly config: StackConfig;
  readonly egress: EgressPolicy;
  private readonly net: ResolvedNetwork;
  private readonly log: Logger;
  private readonly drops = new DropCounters();
  private readonly link = new Link(this.drops);
  private readonly dhcp: DhcpServer;
  private readonly arp: ArpResponder;
  private readonly ipv4: Ipv4Interface;
  private readonly ipv6: Ipv6Interface | undefined;
  private readonly icmp: IcmpEcho;
  /** The guests' IPv4 addresses → MAC. */
  private readonly neighbours: NeighbourTable;
  private readonly icmpRelay: IcmpEchoRelay;
  private readonly tcp: TcpFlowTable;
  private readonly udp: UdpNat;
  private readonly clock: Clock;
  private readonly wallClock: Now;
  private closed = false;

  constructor(o: StackOptions) {
    const n = resolveNetwork(o);
    this.net = n;
    this.config = describeNetwork(n);
    this.log = o.logger ?? silentLogger;
    const clock = o.clock ?? systemClock;
    this.clock = clock;
    this.wallClock = o.wallClock ?? wallClock;
    const verify = o.verifyChecksums !== false;
    this.dhcp = new DhcpServer({
      serverIp: n.gateway,
      subnetMask: n.netmask,
      router: n.gateway,
      dnsServers: n.dnsServers,
      searchDomains: n.searchDomains,
      mtu: n.mtu,
      poolStart: n.firstLease,
      poolEnd: n.lastLease,
      reserved: [n.gateway, n.hostAddress],
      leaseTimeSeconds: n.leaseTimeSeconds,
      staticLeases: n.staticLeases.map((l) => ({
        mac: l.mac,
        ip: parseIpv4Address(l.ip)!,
        hostname: l.hostname,
      })),
      clock,
    });
    const addressing = new Addressing(n);
    const neighbours = new NeighbourTable({
      guard: o.sourceGuard !== false,
      leaseOwner: (ip) => this.dhcp.ownerOf(ip),
    });
    this.neighbours = neighbours;
    if (o.ipv6 !== false) {
      this.ipv6 = new Ipv6Interface(
        n.gatewayMac,
        n.mtu,
        this.link,
        this.drops,
        clock,
        verify,
        o.ipv6 ?? {},
        o.sourceGuard !== false,
      );
      this.config = { ...this.config, ipv6: this.ipv6.config };
    }
    const v6 = this.ipv6?.config;
    this.egress = new EgressPolicy(
      {
        hostAddress: n.hostAddress,
        network: n.network,
        netmask: n.netmask,
        ...(v6 ? { ipv6: { hostAddress: v6.hostAddress, prefix: v6.prefix } } : {}),
      },
      this.withSiblingNames(o.egress),
      this.log,
      clock,
    );
    this.arp = new ArpResponder(n, addressing, neighbours, this.link, this.drops, clock);
    this.ipv4 = new Ipv4Interface(n, addressing, neighbours, this.link, this.drops, clock, verify);
    this.icmpRelay = new IcmpEchoRelay(this.drops, clock, this.log, this.egress, o.icmpRelay);
    this.icmp = new IcmpEcho(n, neighbours, this.link, this.drops, verify, this.ipv4.ids, this.icmpRelay);
    this.icmpRelay.deliverTo(4, this.icmp.deliverRelayed);
    if (this.ipv6) this.icmpRelay.deliverTo(6, this.ipv6.deliverRelayed);
    const random = o.random ?? cryptoRandom;
    const addresses = new AddressMap(n, v6);
    const out = new DualOutput(this.ipv4, this.ipv6);
    this.tcp = new TcpFlowTable(
      n,
      addresses,
      out,
      this.drops,
      clock,
      random,
      this.log,
      o.policy,
      this.egress,
      o.tcp,
    );
    this.udp = new UdpNat(addresses, out, this.drops, clock, this.log, o.policy, this.egress, o.udp);
    this.ipv6?.deliverTo({ tcp: this.tcp, udp: this.udp, relay: this.icmpRelay });
    this.ipv4.deliverTo({
      tcp: this.tcp,
      udp: this.udp,
      icmp: this.icmp,
      dhcp: new DhcpPort(n, this.dhcp, neighbours, this.link, clock, this.ipv4.ids, this.log),
    });
  }

  attach(transport: FrameTransport): void {
    if (this.link.transport) throw new ConfigError("a transport is already attached");
    this.link.transport = transport;
    // A TSO link takes TCP super-segments: connections opened from now on may emit up to 64 KiB.
    this.tcp.maxBurstSegment = transport.offload?.tso ? TSO_MAX_PAYLOAD : undefined;
    transport.start({
      onFrame: (frame, meta) => this.onFrame(frame, meta),
      // Kept by the TCP paths only as copies; every other frame is copied first (`onFrame`).
      acceptsLent: true,
      onClose: (error) => {
        this.log.info({ link: transport.name, err: error?.message }, "guest link closed");
        if (this.link.transport === transport) this.link.transport = undefined;
      },
    });
  }

  addStaticLease(mac: string, ip: string, hostname?: string): void {
    const addr = parseIpv4Address(ip);
    if (addr === undefined) throw new ConfigError(`"${ip}" is not an IPv4 address`);
    this.dhcp.addStaticLease(mac, addr, hostname);
  }

  leases(): LeaseInfo[] {
    // The DHCP server counts on the monotonic clock; people read wall-clock times.
    const offset = this.wallClock.now() - this.clock.now();
    return this.dhcp.leases().map((l) => {
      const ipv6 = this.ipv6AddressesOfMac(l.mac);
      return {
        ...l,
        ip: ipv4ToString(l.ip),
        expiresAt: l.expiresAt + offset,
        ...(ipv6.length ? { ipv6 } : {}),
      };
    });
  }

  async connect(ip: string, port: number, options: DialOptions = {}): Promise<Duplex> {
    const addr = await this.resolveGuest(ip, options.timeoutMs ?? 10_000);
    return this.tcp.connect(addr, port, options.timeoutMs, options.service);
  }

  async dialUdp(
    ip: string,
    port: number,
    options: Pick<DialOptions, "service"> = {},
  ): Promise<GuestUdpSocket> {
    return this.udp.dial(await this.resolveGuest(ip, 3_000), port, options.service);
  }

  /** A guest address (IPv4 or IPv6 text) whose guest answers ARP or neighbour discovery. */
  private async resolveGuest(ip: string, timeoutMs: number): Promise<IpAddr> {
    const v4 = parseIpv4Address(ip);
    if (v4 !== undefined) {
      if (!(await this.arp.resolve(v4, timeoutMs, () => this.closed))) {
        throw new DialError("unreachable", `no guest answers ARP for ${ip}`);
      }
      return v4;
    }
    const v6 = parseIpv6Address(ip.replace(/^\[(.*)\]$/, "$1"));
    if (!v6) throw new DialError("unreachable", `"${ip}" is not an IP address`);
    if (!this.ipv6) throw new DialError("unreachable", `${ip}: IPv6 is off`);
    const text = ipv6ToString(v6);
    if (!(await this.ipv6.resolve(text, timeoutMs, () => this.closed))) {
      throw new DialError("unreachable", `no guest answers neighbour discovery for ${text}`);
    }
    return text;
  }

  /**
   * Name rules go by the names the DNS server answered a guest with, and a guest asks its
   * questions from one address and family and connects from another (an AAAA answer asked for
   * over IPv4): the names answered to any address of the same guest (its MAC) count.
   */
  private withSiblingNames(o: EgressOptions | undefined): EgressOptions | undefined {
    const namesFor = o?.namesFor;
    if (!namesFor) return o;
    return {
      ...o,
      namesFor: (guestIp, dstIp) => {
        const own = namesFor(guestIp, dstIp);
        const others = this.siblingsOf(guestIp).flatMap((sibling) => namesFor(sibling, dstIp));
        return others.length === 0 ? own : [...own, ...others];
      },
    };
  }

  /** The guest's other addresses, IPv4 and IPv6 (not link-local), by the MAC that holds `ip`. */
  private siblingsOf(ip: string): string[] {
    const v4 = parseIpv4Address(ip);
    if (v4 !== undefined) return this.ipv6AddressesOf(ip);
    const mac = this.ipv6?.guestNeighbours().find((n) => n.address === ip)?.mac;
    if (!mac) return [];
    const v4s = this.neighbours
      .list()
      .filter((n) => n.mac === mac)
      .map((n) => ipv4ToString(n.address));
    return [...v4s, ...this.ipv6AddressesOfMac(mac).filter((a) => a !== ip)];
  }

  ipv6AddressesOf(ip: string): string[] {
    const v4 = parseIpv4Address(ip);
    const mac = v4 === undefined ? undefined : this.neighbours.lookup(v4);
    return mac ? this.ipv6AddressesOfMac(macToString(mac)) : [];
  }

  private ipv6AddressesOfMac(mac: string): string[] {
    return (this.ipv6?.guestNeighbours() ?? [])
      .filter((n) => n.mac === mac && !n.address.startsWith("fe80:"))
      .map((n) => n.address);
  }

  flows(): FlowEntry[] {
    return [...this.tcp.listFlows(), ...this.udp.listFlows()];
  }

  counters(): StackCounters {
    return {
      frames: { ...this.link.frames },
      tcp: {
        ...this.tcp.countersNow(),
        open: this.tcp.openCount,
        timeWait: this.tcp.timeWaitCount,
        pendingConnects: this.tcp.pendingConnects,
      },
      udp: { ...this.udp.counters, open: this.udp.openCount },
      icmp: {
        ...this.icmp.counters,
        relay: { ...this.icmpRelay.counters, sockets: this.icmpRelay.describeSockets() },
      },
      arp: { ...this.arp.counters },
      ...(this.ipv6 ? { ipv6: { ...this.ipv6.counters } } : {}),
      memory: this.tcp.memory(),
      egress: this.egress.counters(),
      drops: {
        ...this.drops.byReason,
        ...prefixed("reassembly-", this.ipv4.reassembler.drops),
        ...prefixed("reassembly6-", this.ipv6?.reassembler.drops ?? {}),
        ...prefixed("dhcp-", this.dhcp.stats.drops),
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ipv4.stop();
    this.ipv6?.stop();
    await this.icmpRelay.close();
    this.tcp.close();
    this.udp.close();
    const t = this.link.transport;
    this.link.transport = undefined;
    await t?.close();
  }

  private onFrame(frame: Buffer, meta?: FrameMeta): void {
    this.link.frames.in++;
    this.link.frames.bytesIn += frame.length;
    // The bulk of a guest's traffic, TCP, copies what it keeps: its data until the host socket
    // wrote it, segments out of order, the SYN of a pending connect. The other paths keep views
    // of the frame (fragments, UDP payloads, ...), so they get a frame of their own.
    if (meta?.lent && !isWholeTcp(frame)) frame = Buffer.from(frame);
    try {
      const eth = parseEthernet(frame);
      if (!eth.dst.equals(this.net.gatewayMac) && !isBroadcastMac(eth.dst)) {
        // IPv6's neighbour discovery speaks to multicast groups (33:33:...).
        const ndGroup = eth.ethertype === ETHERTYPE_IPV6 && this.ipv6?.acceptsMulticastMac(eth.dst);
        if (!ndGroup) {
          this.drops.count(isMulticastMac(eth.dst) ? "multicast" : "not-for-gateway");
          return;
        }
      }
      switch (eth.ethertype) {
        case ETHERTYPE_ARP:
          this.arp.onArp(eth.payload);
          return;
        case ETHERTYPE_IPV4:
          this.ipv4.onPacket(eth.payload, eth.src, meta?.checksumPartial === true);
          return;
        case ETHERTYPE_IPV6:
          if (this.ipv6) this.ipv6.onPacket(eth.payload, eth.src, meta?.checksumPartial === true);
          else this.drops.count("ipv6");
          return;
        default:
          this.drops.count("unknown-ethertype");
      }
    } catch (err) {
      if (WireError.isInstance(err)) this.drops.count(`${err.layer}-${err.reason}`);
      else {
        this.drops.count("internal-error");
        this.log.error({ err: (err as Error).stack }, "frame handling failed");
      }
    }
  }
}

/**
 * An untagged Ethernet frame carrying a TCP segment that is not a fragment: IPv4, or IPv6 with
 * TCP right after its fixed header (no extension header).
 */
function isWholeTcp(frame: Buffer): boolean {
  if (frame.length < ETH_HEADER_LEN + 40) return false;
  const ethertype = frame.readUInt16BE(12);
  if (ethertype === ETHERTYPE_IPV4) {
    return (
      frame[ETH_HEADER_LEN + 9] === IPPROTO_TCP && (frame.readUInt16BE(ETH_HEADER_LEN + 6) & 0x3fff) === 0
    );
  }
  return ethertype === ETHERTYPE_IPV6 && frame[ETH_HEADER_LEN + 6] === IPPROTO_TCP;
}

/** Addressing of the network in people's terms. */
function describeNetwork(n: ResolvedNetwork): StackConfig {
  return {
    subnet: n.subnet,
    prefixLength: n.prefixLength,
    netmask: ipv4ToString(n.netmask),
    gateway: ipv4ToString(n.gateway),
    hostAddress: ipv4ToString(n.hostAddress),
    firstLease: ipv4ToString(n.firstLease),
    mtu: n.mtu,
    gatewayMac: macToString(n.gatewayMac),
    dnsServers: n.dnsServers.map(ipv4ToString),
    searchDomains: n.searchDomains,
  };
}

function prefixed(prefix: string, record: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(record)) if (v) out[prefix + k] = v;
  return out;
}
