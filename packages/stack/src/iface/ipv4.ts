/**
 * IPv4 on the guest link. Input: parse, source guard, fragment reassembly (with its expiry
 * timer), then dispatch to TCP, UDP (DHCP first) and ICMP. Output (`IpOutput`): TCP segments
 * with checksum offload and TSO metadata when the link takes them, UDP datagrams fragmented to the
 * MTU, and ICMP unreachables.
 */
import type { Clock } from "@desktopd/core";
import type { ResolvedNetwork } from "../config.js";
import type { DropCounters } from "../counters.js";
import type { TcpFlowTable } from "../nat/tcp-table.js";
import type { UdpNat } from "../nat/udp.js";
import { DHCP_SERVER_PORT } from "../wire/dhcp.js";
import {
  ICMP_CODE_ADMIN_PROHIBITED,
  ICMP_CODE_HOST_UNREACHABLE,
  ICMP_CODE_NET_UNREACHABLE,
  ICMP_CODE_PORT_UNREACHABLE,
  ICMP_DEST_UNREACHABLE,
} from "../wire/icmpv4.js";
import {
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type Ipv4Packet,
  icmpQuote,
  parseIpv4,
} from "../wire/ipv4.js";
import { type Payload, payloadLength } from "../wire/payload.js";
import { Ipv4Reassembler } from "../wire/reassembly.js";
import { parseTcp, type TcpEmitFields } from "../wire/tcp.js";
import { parseUdp } from "../wire/udp.js";
import type { Addressing } from "./addressing.js";
import type { DhcpPort } from "./dhcp.js";
import { ExpiryTimer } from "./expiry-timer.js";
import { Ipv4Ids, icmpFrame, TCP_FRAME_L4_OFFSET, tcpFrame, tcpHeaders, udpFrames } from "./frames.js";
import type { IcmpEcho } from "./icmp.js";
import {
  type FlowOwner,
  type IpHeader,
  type IpOutput,
  tcpOffloadMeta,
  type Unreachable,
} from "./ip-output.js";
import type { Link } from "./link.js";
import type { NeighbourTable } from "./neighbours.js";
import { ICMP_ERROR_BURST, ICMP_ERRORS_PER_SECOND, KeyedTokenBuckets } from "./token-bucket.js";

const LIMITED_BROADCAST = 0xffffffff;
const UNREACHABLE_CODE: Record<Unreachable, number> = {
  net: ICMP_CODE_NET_UNREACHABLE,
  host: ICMP_CODE_HOST_UNREACHABLE,
  port: ICMP_CODE_PORT_UNREACHABLE,
  admin: ICMP_CODE_ADMIN_PROHIBITED,
};

/** Where IPv4 input goes once parsed; set once the transport layers exist (they need `IpOutput` first). */
export interface Ipv4Upper {
  tcp: TcpFlowTable;
  udp: UdpNat;
  icmp: IcmpEcho;
  dhcp: DhcpPort;
}

export class Ipv4Interface implements IpOutput {
  readonly reassembler: Ipv4Reassembler;
  /** ICMP errors per guest (RFC 1812 §4.3.2.8): a flood provokes a few, not one per packet. */
  private readonly icmpErrors: KeyedTokenBuckets;
  /** Identification numbers of every packet this interface sends (ICMP and DHCP's too). */
  readonly ids = new Ipv4Ids();
  private readonly reassemblyTimer: ExpiryTimer;
  private upper: Ipv4Upper | undefined;

  constructor(
    private readonly net: ResolvedNetwork,
    private readonly addressing: Addressing,
    private readonly neighbours: NeighbourTable,
    private readonly link: Link,
    private readonly drops: DropCounters,
    private readonly clock: Clock,
    private readonly verify: boolean,
  ) {
    this.reassembler = new Ipv4Reassembler({ clock });
    this.icmpErrors = new KeyedTokenBuckets(clock, ICMP_ERRORS_PER_SECOND, ICMP_ERROR_BURST);
    this.reassemblyTimer = new ExpiryTimer(clock, this.reassembler);
  }

  deliverTo(upper: Ipv4Upper): void {
    this.upper = upper;
  }

  // ---- Input ------------------------------------------------------------------------------

  /**
   * One IPv4 packet from `srcMac`. A partial checksum (guest checksum offload) is not verifiable:
   * the guest kernel vouches for the data, as it does for a NIC. The IP header checksum is complete.
   */
  onPacket(payload: Buffer, srcMac: Buffer, checksumPartial: boolean): void {
    const upper = this.upper!;
    const verifyL4 = this.verify && !checksumPartial;
    let ip = parseIpv4(payload, { verifyChecksum: this.verify });
    if (!this.sourceAllowed(ip, srcMac)) return;
    if (ip.moreFragments || ip.fragmentOffset > 0) {
      // Charged to the sender: one guest cannot evict another's datagrams (see ReassemblyOptions).
      const whole = this.reassembler.push(ip, srcMac.readUIntBE(0, 6));
      this.reassemblyTimer.arm();
      if (!whole) return;
      ip = whole;
    }
    switch (ip.protocol) {
      case IPPROTO_TCP:
        if (ip.dst === this.net.broadcast || ip.dst === LIMITED_BROADCAST) {
          this.drops.count("tcp-broadcast");
          return;
        }
        upper.tcp.onSegment(ip, parseTcp(ip.payload, ip.src, ip.dst, { verifyChecksum: verifyL4 }));
        return;
      case IPPROTO_UDP:
        this.onUdp(ip, verifyL4, upper);
        return;
      case IPPROTO_ICMP:
        upper.icmp.onPacket(ip);
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
    if (!this.addressing.inSubnet(src)) {
      this.drops.count("ip-src-not-in-subnet");
      return false;
    }
    if (this.addressing.own.has(src)) {
      this.drops.count("ip-src-gateway");
      return false;
    }
    if (!this.neighbours.admit(src, srcMac, this.clock.now())) {
      this.drops.count("ip-src-spoofed");
      return false;
    }
    return true;
  }

  private onUdp(ip: Ipv4Packet, verify: boolean, upper: Ipv4Upper): void {
    const udp = parseUdp(ip.payload, ip.src, ip.dst, { verifyChecksum: verify });
    if (udp.dstPort === DHCP_SERVER_PORT) {
      upper.dhcp.onMessage(udp.payload);
      return;
    }
    if (ip.src === 0) {
      this.drops.count("ip-src-unspecified");
      return;
    }
    if (ip.dst === LIMITED_BROADCAST || ip.dst === this.net.broadcast || ip.dst >>> 28 === 0xe) {
      this.drops.count("udp-broadcast");
      return;
    }
    upper.udp.onDatagram(ip, udp);
  }

  stop(): void {
    this.reassemblyTimer.stop();
  }

  // ---- Output (IpOutput) -----------------------------------------------------------------

  sendTcp(
    srcIp: number,
    dstIp: number,
    fields: TcpEmitFields,
    payload: Payload | undefined,
    segmentSize?: number,
  ): void {
    const dstMac = this.neighbours.lookup(dstIp);
    if (!dstMac) {
      this.drops.count("tx-no-arp-entry");
      return;
    }
    const route = { srcMac: this.net.gatewayMac, dstMac, srcIp, dstIp, ids: this.ids };
    const plen = payload ? payloadLength(payload) : 0;
    const meta = tcpOffloadMeta(this.link.transport?.offload, TCP_FRAME_L4_OFFSET, plen, segmentSize);
    // A link that finishes checksums and writes with writev gets the payload as views, uncopied.
    if (meta && payload && this.link.scatters) {
      this.link.sendParts(tcpHeaders(route, fields, plen), payload, meta);
      return;
    }
    this.link.send(tcpFrame(route, fields, payload, meta !== undefined), meta);
  }

  sendUdp(srcIp: number, dstIp: number, srcPort: number, dstPort: number, payload: Buffer): void {
    const dstMac = this.neighbours.lookup(dstIp);
    if (!dstMac) {
      this.drops.count("tx-no-arp-entry");
      return;
    }
    const route = { srcMac: this.net.gatewayMac, dstMac, srcIp, dstIp, ids: this.ids };
    for (const f of udpFrames(route, srcPort, dstPort, payload, this.net.mtu)) this.link.send(f);
  }

  sendUnreachable(srcIp: number, dstIp: number, why: Unreachable, original: Buffer): void {
    const dstMac = this.neighbours.lookup(dstIp);
    if (!dstMac) return;
    if (!this.icmpErrors.take(dstMac.toString("hex"))) {
      this.drops.count("icmp-error-rate-limited");
      return;
    }
    this.link.send(
      icmpFrame(
        { srcMac: this.net.gatewayMac, dstMac, srcIp, dstIp, ids: this.ids },
        { type: ICMP_DEST_UNREACHABLE, code: UNREACHABLE_CODE[why], rest: 0, payload: original },
      ),
    );
  }

  quote(packet: IpHeader): Buffer {
    return icmpQuote(packet as Ipv4Packet);
  }

  ownerOf(packet: IpHeader): FlowOwner {
    // The source guard admitted the sender's MAC for this address a moment ago.
    return this.neighbours.macKeyOf(packet.src as number) ?? packet.src;
  }
}
