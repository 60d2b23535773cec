/**
 * A frame-level harness for the whole stack (gVisor's testbench and `checker` idea): a stack on
 * a manual clock, attached to one end of the in-memory link; the test scripts guests with real
 * frames on the other end and asserts on the frames the stack answers with.
 *
 * @example
 * ```ts
 * const h = frameHarness();
 * const g = h.guest("02:00:00:00:00:03", "192.168.65.3");
 * g.tcp({ dst: h.config.gateway, srcPort: 40000, dstPort: 53, flags: TCP_SYN, seq: 1 });
 * await h.settle();
 * expectFrame(h.take()[0], IPv4(SrcAddr(h.config.gateway)), TCP(Flags(TCP_SYN | TCP_ACK)));
 * await h.close();
 * ```
 */

import type { FrameTransport } from "@desktopd/core";
import { ManualClock } from "@desktopd/core";
import { arpFrame, Ipv4Ids, icmpFrame, tcpFrame, udpFrames } from "../iface/frames.js";
import { tcp6Frame } from "../iface/frames6.js";
import { createStack, type Stack, type StackOptions } from "../stack.js";
import { BROADCAST_MAC, ipv4ToString, macToString, parseIpv4Address, parseMac } from "../wire/address.js";
import { ARP_REQUEST, type ArpPacket, parseArp } from "../wire/arp.js";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, type DhcpMessage, parseDhcp } from "../wire/dhcp.js";
import {
  ETH_HEADER_LEN,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  type EthernetFrame,
  emitEthernetHeader,
  parseEthernet,
} from "../wire/ethernet.js";
import { type IcmpPacket, parseIcmpv4 } from "../wire/icmpv4.js";
import {
  emitIpv4Header,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  IPV4_HEADER_LEN,
  type Ipv4Packet,
  parseIpv4,
} from "../wire/ipv4.js";
import { parseIpv6Address } from "../wire/ipv6.js";
import { parseTcp, type TcpEmitFields, type TcpSegment } from "../wire/tcp.js";
import { parseUdp, type UdpDatagram } from "../wire/udp.js";
import { createTransportPair, type TransportPairOptions } from "./pair.js";
import type { SegmentCheck } from "./tcp-harness.js";

/** A frame the stack sent, parsed as far as it goes. */
export interface SeenFrame {
  raw: Buffer;
  eth: EthernetFrame;
  arp?: ArpPacket;
  ip?: Ipv4Packet;
  tcp?: TcpSegment;
  udp?: UdpDatagram;
  icmp?: IcmpPacket;
  dhcp?: DhcpMessage;
}

function parseSeen(raw: Buffer): SeenFrame {
  const eth = parseEthernet(raw);
  const f: SeenFrame = { raw, eth };
  if (eth.ethertype === ETHERTYPE_ARP) f.arp = parseArp(eth.payload);
  if (eth.ethertype !== ETHERTYPE_IPV4) return f;
  const ip = parseIpv4(eth.payload);
  f.ip = ip;
  // Offloaded checksums are left partial: verify nothing, as a guest kernel would not either.
  if (ip.protocol === IPPROTO_TCP) f.tcp = parseTcp(ip.payload, ip.src, ip.dst, { verifyChecksum: false });
  if (ip.protocol === IPPROTO_UDP && !ip.moreFragments && ip.fragmentOffset === 0) {
    f.udp = parseUdp(ip.payload, ip.src, ip.dst, { verifyChecksum: false });
    if (f.udp.srcPort === DHCP_SERVER_PORT) f.dhcp = parseDhcp(f.udp.payload);
  }
  if (ip.protocol === IPPROTO_ICMP) f.icmp = parseIcmpv4(ip.payload);
  return f;
}

// ---- Checkers --------------------------------------------------------------------------------

/** One property of a frame: a description of the mismatch, or undefined. */
export type FrameCheck = (f: SeenFrame) => string | undefined;
export type IpCheck = (ip: Ipv4Packet) => string | undefined;

const differ = (what: string, want: unknown, got: unknown) =>
  want === got ? undefined : `${what}: want ${String(want)}, got ${String(got)}`;

const all = <T>(checks: ((x: T) => string | undefined)[], x: T) =>
  checks.map((c) => c(x)).find((e) => e !== undefined);

export const SrcAddr =
  (addr: string): IpCheck =>
  (ip) =>
    differ("ip src", addr, ipv4ToString(ip.src));
export const DstAddr =
  (addr: string): IpCheck =>
  (ip) =>
    differ("ip dst", addr, ipv4ToString(ip.dst));
export const EthDst =
  (mac: string): FrameCheck =>
  (f) =>
    differ("eth dst", mac, macToString(f.eth.dst));
export const IPv4 =
  (...checks: IpCheck[]): FrameCheck =>
  (f) =>
    f.ip ? all(checks, f.ip) : "not an IPv4 frame";
/** A TCP segment with these properties (the TCP harness's checks: Flags, Seq, Ack, Len, ...). */
export const TCP =
  (...checks: (SegmentCheck | ((s: TcpSegment) => string | undefined))[]): FrameCheck =>
  (f) =>
    f.tcp ? all(checks, f.tcp) : `not TCP (${describe(f)})`;
export const SrcPort =
  (port: number): SegmentCheck =>
  (s) =>
    differ("src port", port, s.srcPort);
export const DstPort =
  (port: number): SegmentCheck =>
  (s) =>
    differ("dst port", port, s.dstPort);
export const UDP =
  (...checks: ((u: UdpDatagram) => string | undefined)[]): FrameCheck =>
  (f) =>
    f.udp ? all(checks, f.udp) : `not UDP (${describe(f)})`;
export const ICMPv4 =
  (type: number, code?: number): FrameCheck =>
  (f) =>
    !f.icmp
      ? `not ICMP (${describe(f)})`
      : (differ("icmp type", type, f.icmp.type) ??
        (code === undefined ? undefined : differ("icmp code", code, f.icmp.code)));
export const DHCP =
  (messageType: number, check?: (m: DhcpMessage) => string | undefined): FrameCheck =>
  (f) =>
    !f.dhcp
      ? `not DHCP (${describe(f)})`
      : (differ("dhcp type", messageType, f.dhcp.messageType) ?? check?.(f.dhcp));
export const ARP =
  (op: number, senderIp?: string): FrameCheck =>
  (f) =>
    !f.arp
      ? `not ARP (${describe(f)})`
      : (differ("arp op", op, f.arp.op) ??
        (senderIp === undefined ? undefined : differ("arp sender", senderIp, ipv4ToString(f.arp.senderIp))));

export function describe(f: SeenFrame): string {
  if (f.arp) return `ARP op=${f.arp.op} ${ipv4ToString(f.arp.senderIp)} → ${ipv4ToString(f.arp.targetIp)}`;
  if (!f.ip) return `ethertype 0x${f.eth.ethertype.toString(16)}`;
  const ends = `${ipv4ToString(f.ip.src)} → ${ipv4ToString(f.ip.dst)}`;
  if (f.tcp) return `TCP ${ends} ${f.tcp.srcPort}>${f.tcp.dstPort} flags=0x${f.tcp.flags.toString(16)}`;
  if (f.dhcp) return `DHCP type=${f.dhcp.messageType} ${ends}`;
  if (f.udp) return `UDP ${ends} ${f.udp.srcPort}>${f.udp.dstPort} len=${f.udp.payload.length}`;
  if (f.icmp) return `ICMP ${ends} type=${f.icmp.type} code=${f.icmp.code}`;
  return `IPv4 ${ends} proto=${f.ip.protocol}`;
}

/** Throws unless every check passes, naming the failed property and the frame. */
export function expectFrame(f: SeenFrame | undefined, ...checks: FrameCheck[]): void {
  if (!f) throw new Error("expected a frame, got none");
  const error = all(checks, f);
  if (error) throw new Error(`${error}\n  in ${describe(f)}`);
}

// ---- Guests ------------------------------------------------------------------------------------

export interface GuestTcp {
  dst: string;
  srcPort: number;
  dstPort: number;
  flags: number;
  seq?: number;
  ack?: number;
  window?: number;
  payload?: Buffer;
  mss?: number;
  /** Send from this address instead of the guest's own (spoofing). */
  src?: string;
}

function tcpFields(t: Omit<GuestTcp, "src">): TcpEmitFields {
  const fields: TcpEmitFields = {
    srcPort: t.srcPort,
    dstPort: t.dstPort,
    seq: t.seq ?? 1000,
    ack: t.ack ?? 0,
    flags: t.flags,
    window: t.window ?? 64240,
  };
  if (t.mss !== undefined) fields.mss = t.mss;
  return fields;
}

/** A scripted guest NIC: builds real frames from its MAC and address. */
export class ScriptedGuest {
  constructor(
    private readonly link: FrameTransport,
    private readonly gatewayMac: Buffer,
    readonly mac: Buffer,
    readonly ip: string,
  ) {}

  private readonly ids = new Ipv4Ids();

  private route(dst: string, src = this.ip) {
    return {
      srcMac: this.mac,
      dstMac: this.gatewayMac,
      srcIp: parseIpv4Address(src)!,
      dstIp: parseIpv4Address(dst)!,
      ids: this.ids,
    };
  }

  send(frame: Buffer): void {
    this.link.send(frame);
  }

  tcp(t: GuestTcp): void {
    this.send(tcpFrame(this.route(t.dst, t.src), tcpFields(t), t.payload));
  }

  /** A TCP segment over IPv6 from `src` (the guest picks its IPv6 addresses itself) to `t.dst`. */
  tcp6(src: string, t: Omit<GuestTcp, "src">): void {
    const route = {
      srcMac: this.mac,
      dstMac: this.gatewayMac,
      src: parseIpv6Address(src)!,
      dst: parseIpv6Address(t.dst)!,
    };
    this.send(tcp6Frame(route, tcpFields(t), t.payload));
  }

  udp(dst: string, srcPort: number, dstPort: number, payload: Buffer, src?: string): void {
    for (const f of udpFrames(this.route(dst, src), srcPort, dstPort, payload, 65535)) this.send(f);
  }

  /** One IPv4 fragment (or any raw IPv4 packet) carrying `payload` as is. */
  ipPacket(
    dst: string,
    o: { protocol?: number; id?: number; fragmentOffset?: number; moreFragments?: boolean; payload: Buffer },
    src = this.ip,
  ): void {
    const frame = Buffer.alloc(ETH_HEADER_LEN + IPV4_HEADER_LEN + o.payload.length);
    emitEthernetHeader(frame, 0, this.gatewayMac, this.mac, ETHERTYPE_IPV4);
    emitIpv4Header(frame, ETH_HEADER_LEN, {
      src: parseIpv4Address(src)!,
      dst: parseIpv4Address(dst)!,
      protocol: o.protocol ?? IPPROTO_UDP,
      payloadLength: o.payload.length,
      id: o.id ?? 1,
      fragmentOffset: o.fragmentOffset ?? 0,
      moreFragments: o.moreFragments ?? false,
    });
    o.payload.copy(frame, ETH_HEADER_LEN + IPV4_HEADER_LEN);
    this.send(frame);
  }

  ping(dst: string, id = 1, seq = 1): void {
    this.send(
      icmpFrame(this.route(dst), { type: 8, code: 0, rest: (id << 16) | seq, payload: Buffer.from("ping") }),
    );
  }

  /** An ARP request from this guest, or a forged one claiming `senderIp`. */
  arpRequest(targetIp: string, senderIp = this.ip): void {
    this.send(
      arpFrame(this.mac, BROADCAST_MAC, {
        op: ARP_REQUEST,
        senderMac: this.mac,
        senderIp: parseIpv4Address(senderIp)!,
        targetMac: Buffer.alloc(6),
        targetIp: parseIpv4Address(targetIp)!,
      }),
    );
  }

  /** A DHCP client message (DISCOVER 1, REQUEST 3, INFORM 8, ...) broadcast from 0.0.0.0. */
  dhcp(type: number, o: { xid?: number; requested?: string; serverId?: string; ciaddr?: string } = {}): void {
    const options: number[] = [53, 1, type];
    const addr = (code: number, text: string) => options.push(code, 4, ...ipBytes(text));
    if (o.requested) addr(50, o.requested);
    if (o.serverId) addr(54, o.serverId);
    options.push(255);
    const msg = Buffer.alloc(240 + options.length);
    msg[0] = 1; // BOOTREQUEST
    msg[1] = 1;
    msg[2] = 6;
    msg.writeUInt32BE((o.xid ?? 0x1234) >>> 0, 4);
    if (o.ciaddr) msg.writeUInt32BE(parseIpv4Address(o.ciaddr)!, 12);
    this.mac.copy(msg, 28);
    msg.writeUInt32BE(0x63825363, 236);
    Buffer.from(options).copy(msg, 240);
    const route = { srcMac: this.mac, dstMac: BROADCAST_MAC, srcIp: 0, dstIp: 0xffffffff };
    if (o.ciaddr) route.srcIp = parseIpv4Address(o.ciaddr)!;
    for (const f of udpFrames(route, DHCP_CLIENT_PORT, DHCP_SERVER_PORT, msg, 1500)) this.send(f);
  }
}

function ipBytes(text: string): number[] {
  const n = parseIpv4Address(text)!;
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

// ---- Harness -------------------------------------------------------------------------------------

export interface FrameHarness {
  readonly stack: Stack;
  readonly clock: ManualClock;
  readonly config: Stack["config"];
  /** Every frame the stack sent so far and not yet taken. */
  readonly seen: SeenFrame[];
  /** A guest on the link (frames are only built here; the stack learns it from what it sends). */
  guest(mac: string, ip: string): ScriptedGuest;
  /** Lets the link and the stack's end-of-batch work run until nothing moves. */
  settle(): Promise<void>;
  /** Moves the manual clock, running due timers one deadline at a time and settling after each. */
  advance(ms: number): Promise<void>;
  /** Takes the frames seen so far, optionally only those to `ip`. */
  take(toIp?: string): SeenFrame[];
  close(): Promise<void>;
}

const turn = () => new Promise<void>((r) => setImmediate(r));

export function frameHarness(
  options: Omit<StackOptions, "clock"> = {},
  clock = new ManualClock(1_000_000),
  link: TransportPairOptions = {},
): FrameHarness {
  const [stackSide, guestSide] = createTransportPair(link);
  const stack = createStack({ ...options, clock });
  stack.attach(stackSide);
  const seen: SeenFrame[] = [];
  guestSide.start({ onFrame: (f) => seen.push(parseSeen(Buffer.from(f))) });
  const gatewayMac = parseMac(stack.config.gatewayMac)!;
  const settle = async () => {
    let quiet = 0;
    let last = -1;
    // Settled once several event-loop turns in a row moved no frame.
    while (quiet < 4) {
      await turn();
      quiet = seen.length === last ? quiet + 1 : 0;
      last = seen.length;
    }
  };
  return {
    stack,
    clock,
    config: stack.config,
    seen,
    guest: (mac, ip) => new ScriptedGuest(guestSide, gatewayMac, parseMac(mac)!, ip),
    settle,
    async advance(ms) {
      // Deadline by deadline, settling in between: work a timer starts (a flush, a new timer)
      // runs before time moves on, as it would in real time.
      const target = clock.now() + ms;
      for (let at = clock.nextTimerAt(); at !== undefined && at <= target; at = clock.nextTimerAt()) {
        clock.advance(Math.max(0, at - clock.now()));
        await settle();
      }
      clock.advance(target - clock.now());
      await settle();
    },
    take(toIp) {
      const taken =
        toIp === undefined ? seen.splice(0) : seen.filter((f) => f.ip && ipv4ToString(f.ip.dst) === toIp);
      if (toIp !== undefined) for (const f of taken) seen.splice(seen.indexOf(f), 1);
      return taken;
    },
    close: () => stack.close(),
  };
}
