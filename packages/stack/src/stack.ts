import type { Duplex } from "node:stream";
import { type Clock, cryptoRandom, type Random, systemClock, type Timer } from "./clock.js";
import { type NetworkConfig, type NetworkOptions, resolveNetworkConfig } from "./config.js";
import { DropCounters, type StackCounters } from "./counters.js";
import { DhcpServer } from "./dhcp/server.js";
import { type Egress, type EgressOptions, EgressPolicy } from "./egress.js";
import { ConfigError, DialError, WireError } from "./errors.js";
import { arpFrame, icmpFrame, TCP_FRAME_L4_OFFSET, tcpFrame, udpFrames } from "./iface/frames.js";
import type { IpOutput } from "./iface/ip-output.js";
import { NeighbourTable } from "./iface/neighbours.js";
import { type Logger, silentLogger } from "./logger.js";
import { TcpFlowTable, type TcpOptions } from "./nat/tcp-table.js";
import { type GuestUdpSocket, UdpNat, type UdpOptions } from "./nat/udp.js";
import type { FlowPolicy } from "./policy.js";
import type { FrameMeta, FrameTransport } from "./transport/types.js";
import {
  BROADCAST_MAC,
  ipv4ToString,
  isBroadcastMac,
  isMulticastMac,
  macToString,
  parseIpv4Address,
} from "./wire/address.js";
import { ARP_REPLY, ARP_REQUEST, parseArp } from "./wire/arp.js";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, parseDhcp } from "./wire/dhcp.js";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, parseEthernet } from "./wire/ethernet.js";
import { ICMP_DEST_UNREACHABLE, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, parseIcmpv4 } from "./wire/icmpv4.js";
import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, type Ipv4Packet, parseIpv4 } from "./wire/ipv4.js";
import { Ipv4Reassembler } from "./wire/reassembly.js";
import { parseTcp, type TcpEmitFields } from "./wire/tcp.js";
import { parseUdp } from "./wire/udp.js";

/** Offset of the checksum field in a TCP header (`FrameMeta.csumOffset`). */
const TCP_CHECKSUM_OFFSET = 16;
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
}

export interface LeaseInfo {
  mac: string;
  ip: string;
  hostname?: string;
  expiresAt: number;
  static: boolean;
}

export interface Stack {
  readonly config: StackConfig;
  /** Egress rules: read and change them while the stack runs. */
  readonly egress: Egress;
  /** Plugs a guest NIC in. The stack owns the transport from now on and closes it on `close()`. */
  attach(transport: FrameTransport): void;
  addStaticLease(mac: string, ip: string, hostname?: string): void;
  leases(): LeaseInfo[];
  /** Opens a TCP connection into the guest, from the host address. Rejects with DialError. */
  connect(ip: string, port: number, options?: { timeoutMs?: number }): Promise<Duplex>;
  /** Opens a UDP socket into the guest, from the host address. */
  dialUdp(ip: string, port: number): Promise<GuestUdpSocket>;
  counters(): StackCounters;
  close(): Promise<void>;
}

/**
 * Creates the userspace network stack: gateway with ARP, DHCP and ICMP echo, and NAT of
 * every guest TCP/UDP flow onto host sockets.
 */
export function createStack(options: StackOptions = {}): Stack {
  return new NetworkStack(options);
}

class NetworkStack implements Stack, IpOutput {
  readonly config: StackConfig;
  private readonly net: NetworkConfig;
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly drops = new DropCounters();
  private readonly arp: NeighbourTable;
  private readonly dhcp: DhcpServer;
  private readonly tcp: TcpFlowTable;
  private readonly udp: UdpNat;
  readonly egress: EgressPolicy;
  private readonly reassembler: Ipv4Reassembler;
  private reassemblyTimer: Timer | undefined;
  /** Addresses of the gateway itself: no guest may claim them. */
  private readonly ownAddresses: Set<number>;
  private readonly verify: boolean;
  private transport: FrameTransport | undefined;
  private readonly frames = { in: 0, out: 0, bytesIn: 0, bytesOut: 0 };
  private readonly icmpCounters = { echoReplies: 0 };
  private readonly arpCounters = { requests: 0, replies: 0 };
  private closed = false;

  constructor(o: StackOptions) {
    this.net = resolveNetworkConfig(o);
    this.log = o.logger ?? silentLogger;
    this.clock = o.clock ?? systemClock;
    const random = o.random ?? cryptoRandom;
    this.verify = o.verifyChecksums !== false;
    const n = this.net;
    this.config = {
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
      clock: this.clock,
    });
    this.ownAddresses = new Set([
      n.gateway,
      n.hostAddress,
      ...n.dnsServers.filter((ip) => this.inSubnet(ip)),
    ]);
    this.arp = new NeighbourTable({
      guard: o.sourceGuard !== false,
      leaseOwner: (ip) => this.dhcp.ownerOf(ip),
    });
    this.egress = new EgressPolicy(
      { hostAddress: n.hostAddress, network: n.network, netmask: n.netmask },
      o.egress,
    );
    this.tcp = new TcpFlowTable(
      n,
      this,
      this.drops,
      this.clock,
      random,
      this.log,
      o.policy,
      this.egress,
      o.tcp,
    );
    this.udp = new UdpNat(n, this, this.drops, this.clock, this.log, o.policy, this.egress, o.udp);
    this.reassembler = new Ipv4Reassembler({ clock: this.clock });
  }

  attach(transport: FrameTransport): void {
    if (this.transport) throw new ConfigError("a transport is already attached");
    this.transport = transport;
    // A TSO link takes TCP super-segments: connections opened from now on may emit up to 64 KiB.
    this.tcp.maxBurstSegment = transport.offload?.tso ? TSO_MAX_PAYLOAD : undefined;
    transport.start({
      onFrame: (frame, meta) => this.onFrame(frame, meta),
      onClose: (error) => {
        this.log.info({ link: transport.name, err: error?.message }, "guest link closed");
        if (this.transport === transport) this.transport = undefined;
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
    const offset = Date.now() - this.clock.now();
    return this.dhcp.leases().map((l) => ({ ...l, ip: ipv4ToString(l.ip), expiresAt: l.expiresAt + offset }));
  }

  async connect(ip: string, port: number, options: { timeoutMs?: number } = {}): Promise<Duplex> {
    const addr = parseIpv4Address(ip);
    if (addr === undefined) throw new DialError("unreachable", `"${ip}" is not an IPv4 address`);
    if (!(await this.resolveMac(addr, options.timeoutMs ?? 10_000))) {
      throw new DialError("unreachable", `no guest answers ARP for ${ip}`);
    }
    return this.tcp.connect(addr, port, options.timeoutMs);
  }

  async dialUdp(ip: string, port: number): Promise<GuestUdpSocket> {
    const addr = parseIpv4Address(ip);
    if (addr === undefined) throw new DialError("unreachable", `"${ip}" is not an IPv4 address`);
    if (!(await this.resolveMac(addr, 3_000)))
      throw new DialError("unreachable", `no guest answers ARP for ${ip}`);
    return this.udp.dial(addr, port);
  }

  /** Waits until the guest's MAC for `ip` is known, asking by ARP. */
  private async resolveMac(ip: number, timeoutMs: number): Promise<boolean> {
    const deadline = this.clock.now() + Math.min(timeoutMs, 3_000);
    while (!this.arp.lookup(ip)) {
      if (this.clock.now() >= deadline || this.closed) return false;
      this.sendFrame(
        arpFrame(this.net.gatewayMac, BROADCAST_MAC, {
          op: ARP_REQUEST,
          senderMac: this.net.gatewayMac,
          senderIp: this.net.gateway,
          targetMac: Buffer.alloc(6),
          targetIp: ip,
        }),
      );
      await new Promise<void>((r) => this.clock.setTimer(r, 100));
    }
    return true;
  }

  counters(): StackCounters {
    return {
      frames: { ...this.frames },
      tcp: { ...this.tcp.counters, open: this.tcp.openCount, pendingConnects: this.tcp.pendingConnects },
      udp: { ...this.udp.counters, open: this.udp.openCount },
      icmp: { ...this.icmpCounters },
      arp: { ...this.arpCounters },
      memory: this.tcp.memory(),
      egress: this.egress.counters(),
      drops: {
        ...this.drops.byReason,
        ...prefixed("reassembly-", this.reassembler.drops),
        ...prefixed("dhcp-", this.dhcp.stats.drops),
      },
      flows: [...this.tcp.flowStats(), ...this.udp.flowStats()],
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reassemblyTimer?.cancel();
    this.tcp.close();
    this.udp.close();
    const t = this.transport;
    this.transport = undefined;
    await t?.close();
  }

  // ---- Receive path ---------------------------------------------------------------------

  private onFrame(frame: Buffer, meta?: FrameMeta): void {
    this.frames.in++;
    this.frames.bytesIn += frame.length;
    try {
      const eth = parseEthernet(frame);
      if (!eth.dst.equals(this.net.gatewayMac) && !isBroadcastMac(eth.dst)) {
        this.drops.count(isMulticastMac(eth.dst) ? "multicast" : "not-for-gateway");
        return;
      }
      switch (eth.ethertype) {
        case ETHERTYPE_ARP:
          this.onArp(eth.payload);
          return;
        case ETHERTYPE_IPV4:
          // A partial checksum (guest checksum offload) is not verifiable: the guest kernel
          // vouches for the data, as it does for a NIC. The IP header checksum is still complete.
          this.onIpv4(eth.payload, eth.src, meta?.checksumPartial === true);
          return;
        case ETHERTYPE_IPV6:
          this.drops.count("ipv6");
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

  private onArp(payload: Buffer): void {
    const p = parseArp(payload);
    // An ARP probe (sender 0.0.0.0) claims nothing; any other sender address must be the MAC's own.
    if (p.senderIp !== 0) {
      if (this.ownAddresses.has(p.senderIp)) {
        this.drops.count("arp-claims-gateway");
        return;
      }
      if (!this.inSubnet(p.senderIp)) {
        this.drops.count("arp-not-in-subnet");
        return;
      }
      if (!this.arp.admit(p.senderIp, p.senderMac, this.clock.now())) {
        this.drops.count("arp-spoofed");
        return;
      }
    }
    if (p.op !== ARP_REQUEST) return;
    this.arpCounters.requests++;
    if (p.targetIp !== this.net.gateway && p.targetIp !== this.net.hostAddress) return;
    this.arpCounters.replies++;
    this.sendFrame(
      arpFrame(this.net.gatewayMac, p.senderMac, {
        op: ARP_REPLY,
        senderMac: this.net.gatewayMac,
        senderIp: p.targetIp,
        targetMac: p.senderMac,
        targetIp: p.senderIp,
      }),
    );
  }

  private onIpv4(payload: Buffer, srcMac: Buffer, checksumPartial = false): void {
    const verifyL4 = this.verify && !checksumPartial;
    let ip = parseIpv4(payload, { verifyChecksum: this.verify });
    if (!this.sourceAllowed(ip, srcMac)) return;
    if (ip.moreFragments || ip.fragmentOffset > 0) {
      const whole = this.reassembler.push(ip);
      this.armReassemblyTimer();
      if (!whole) return;
      ip = whole;
    }
    switch (ip.protocol) {
      case IPPROTO_TCP: {
        if (ip.dst === this.net.broadcast || ip.dst === 0xffffffff) {
          this.drops.count("tcp-broadcast");
          return;
        }
        this.tcp.onSegment(ip, parseTcp(ip.payload, ip.src, ip.dst, { verifyChecksum: verifyL4 }));
        return;
      }
      case IPPROTO_UDP:
        this.onUdp(ip, verifyL4);
        return;
      case IPPROTO_ICMP:
        this.onIcmp(ip);
        return;
      default:
        this.drops.count("unknown-ip-protocol");
    }
  }

  /**
   * Only a guest's own address may be a source: 0.0.0.0 for DHCP alone, never the gateway's, never
   * outside the subnet, and never an address another MAC holds (see NeighbourTable).
   */
  private sourceAllowed(ip: Ipv4Packet, srcMac: Buffer): boolean {
    const src = ip.src;
    if (src === 0) {
      if (ip.protocol === IPPROTO_UDP) return true; // a DHCP client before it has an address
      this.drops.count("ip-src-unspecified");
      return false;
    }
    if (!this.inSubnet(src)) {
      this.drops.count("ip-src-not-in-subnet");
      return false;
    }
    if (this.ownAddresses.has(src)) {
      this.drops.count("ip-src-gateway");
      return false;
    }
    if (!this.arp.admit(src, srcMac, this.clock.now())) {
      this.drops.count("ip-src-spoofed");
      return false;
    }
    return true;
  }

  /** Incomplete datagrams are dropped when their time is up, not only when the next fragment comes. */
  private armReassemblyTimer(): void {
    if (this.reassemblyTimer || this.closed) return;
    const at = this.reassembler.pollAt();
    if (at === undefined) return;
    this.reassemblyTimer = this.clock.setTimer(
      () => {
        this.reassemblyTimer = undefined;
        this.reassembler.expire();
        this.armReassemblyTimer();
      },
      Math.max(0, at - this.clock.now()) + 1,
    );
  }

  private onUdp(ip: Ipv4Packet, verify: boolean): void {
    const udp = parseUdp(ip.payload, ip.src, ip.dst, { verifyChecksum: verify });
    if (udp.dstPort === DHCP_SERVER_PORT) {
      this.onDhcp(udp.payload);
      return;
    }
    if (ip.src === 0) {
      this.drops.count("ip-src-unspecified");
      return;
    }
    if (ip.dst === 0xffffffff || ip.dst === this.net.broadcast || ip.dst >>> 28 === 0xe) {
      this.drops.count("udp-broadcast");
      return;
    }
    this.udp.onDatagram(ip, udp);
  }

  private onDhcp(payload: Buffer): void {
    const msg = parseDhcp(payload);
    const reply = this.dhcp.handle(msg);
    if (!reply) return;
    if (reply.bound) this.arp.pin(reply.bound.ip, reply.bound.mac, this.clock.now());
    const route = {
      srcMac: this.net.gatewayMac,
      dstMac: reply.broadcast ? BROADCAST_MAC : reply.dstMac,
      srcIp: this.net.gateway,
      dstIp: reply.dstIp,
    };
    for (const f of udpFrames(route, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, reply.message, this.net.mtu))
      this.sendFrame(f);
  }

  private onIcmp(ip: Ipv4Packet): void {
    const icmp = parseIcmpv4(ip.payload, { verifyChecksum: this.verify });
    if (icmp.type !== ICMP_ECHO_REQUEST) {
      this.drops.count(`icmp-type-${icmp.type}`);
      return;
    }
    if (ip.dst === this.net.gateway || ip.dst === this.net.hostAddress) {
      const dstMac = this.arp.lookup(ip.src);
      if (!dstMac) return;
      this.icmpCounters.echoReplies++;
      this.sendFrame(
        icmpFrame(
          { srcMac: this.net.gatewayMac, dstMac, srcIp: ip.dst, dstIp: ip.src },
          { type: ICMP_ECHO_REPLY, code: 0, rest: icmp.rest, payload: icmp.payload },
        ),
      );
      return;
    }
    // Relaying echo to other hosts needs unprivileged ICMP sockets, which Node cannot open.
    this.drops.count("icmp-echo-not-relayed");
  }

  // ---- Send path (IpOutput) -------------------------------------------------------------

  sendTcp(
    srcIp: number,
    dstIp: number,
    fields: TcpEmitFields,
    payload: Buffer | undefined,
    segmentSize?: number,
  ): void {
    const dstMac = this.arp.lookup(dstIp);
    if (!dstMac) {
      this.drops.count("tx-no-arp-entry");
      return;
    }
    const route = { srcMac: this.net.gatewayMac, dstMac, srcIp, dstIp };
    const offload = this.transport?.offload;
    if (!offload?.csum) {
      this.sendFrame(tcpFrame(route, fields, payload));
      return;
    }
    // Checksum offload: the kernel finishes the checksum (and cuts a super-segment when TSO).
    const meta: FrameMeta = {
      checksumPartial: true,
      csumStart: TCP_FRAME_L4_OFFSET,
      csumOffset: TCP_CHECKSUM_OFFSET,
    };
    if (offload.tso && segmentSize !== undefined && payload && payload.length > segmentSize) {
      meta.gsoSize = segmentSize;
    }
    this.sendFrame(tcpFrame(route, fields, payload, true), meta);
  }

  sendUdp(srcIp: number, dstIp: number, srcPort: number, dstPort: number, payload: Buffer): void {
    const dstMac = this.arp.lookup(dstIp);
    if (!dstMac) {
      this.drops.count("tx-no-arp-entry");
      return;
    }
    const route = { srcMac: this.net.gatewayMac, dstMac, srcIp, dstIp };
    for (const f of udpFrames(route, srcPort, dstPort, payload, this.net.mtu)) this.sendFrame(f);
  }

  sendUnreachable(srcIp: number, dstIp: number, code: number, original: Buffer): void {
    const dstMac = this.arp.lookup(dstIp);
    if (!dstMac) return;
    this.sendFrame(
      icmpFrame(
        { srcMac: this.net.gatewayMac, dstMac, srcIp, dstIp },
        { type: ICMP_DEST_UNREACHABLE, code, rest: 0, payload: original },
      ),
    );
  }

  private sendFrame(frame: Buffer, meta?: FrameMeta): void {
    const t = this.transport;
    if (!t) {
      this.drops.count("tx-no-link");
      return;
    }
    this.frames.out++;
    this.frames.bytesOut += frame.length;
    if (meta) t.send(frame, meta);
    else t.send(frame);
  }

  private inSubnet(ip: number): boolean {
    return (ip & this.net.netmask) >>> 0 === this.net.network;
  }
}

function prefixed(prefix: string, record: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(record)) if (v) out[prefix + k] = v;
  return out;
}
