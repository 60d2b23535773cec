import type { SlabPoolStats } from "@desktopd/core";
import type { Ipv6Counters } from "./iface/ipv6.js";
import type { TcpCounters } from "./nat/tcp-flow.js";

/** Drop counters by reason: every frame the stack does not use is counted here, never silently lost. */
export class DropCounters {
  readonly byReason: Record<string, number> = {};
  count(reason: string): void {
    this.byReason[reason] = (this.byReason[reason] ?? 0) + 1;
  }
  get total(): number {
    let n = 0;
    for (const v of Object.values(this.byReason)) n += v;
    return n;
  }
}

/** One open flow, as `stack.flows()` lists it. */
export interface FlowEntry {
  protocol: "tcp" | "udp";
  /** The guest's endpoint, "ip:port". */
  guest: string;
  /** The other end as the guest sees it, "ip:port"; a UDP flow that sent to several: the latest. */
  remote: string;
  /** Opened by the guest (outbound), or dialled into it by the stack (inbound: published ports). */
  direction: "outbound" | "inbound";
  /** TCP state (CONNECTING-HOST until the host accepted); UDP: OPEN, or REPLIED once a reply came. */
  state: string;
  /** "nat" (a host socket), "dial", or the name the policy's decision gave ("dns", "publish"...). */
  service: string;
  bytesFromGuest: number;
  bytesToGuest: number;
  ageMs: number;
  /** Since the guest's last segment or datagram (TCP), or the last datagram either way (UDP). */
  idleMs: number;
}

export interface StackCounters {
  frames: { in: number; out: number; bytesIn: number; bytesOut: number };
  /**
   * The flow table's counters, with the connections open, those waiting in TIME-WAIT (not
   * counted as open) and host connects pending now.
   */
  tcp: TcpCounters & { open: number; timeWait: number; pendingConnects: number };
  udp: {
    open: number;
    opened: number;
    closed: number;
    datagramsIn: number;
    datagramsOut: number;
    /** Host datagrams from remotes the guest had not sent to, dropped by the NAT's filter. */
    unsolicited: number;
  };
  /** Echo answered for the gateway and host; echo relayed beyond them (see IcmpEchoRelay). */
  icmp: {
    echoReplies: number;
    relay?: {
      requests: number;
      replies: number;
      denied: number;
      unavailable: number;
      /** Per family once used: the socket kind ("dgram", "raw") or why there is none. */
      sockets?: Partial<Record<"ipv4" | "ipv6", string>>;
    };
  };
  arp: { requests: number; replies: number };
  /** The router's IPv6 side (absent with IPv6 off). */
  ipv6?: Ipv6Counters;
  /**
   * Buffer bytes granted to TCP flows, against the global budget and each guest's share; and
   * the slabs host reads are copied into (see SlabPool), and those guests' data to host sockets
   * is copied into: how many exist and are free, how many were allocated and reused, and the
   * copies that got memory of their own.
   */
  memory: {
    usedBytes: number;
    totalBytes: number;
    perGuestBytes: number;
    readPool: { slabs: number; free: number } & SlabPoolStats;
    writePool: { slabs: number; free: number } & SlabPoolStats;
  };
  /** Guest flows the egress policy let out or refused, by rule id or default. */
  egress: { allowed: number; denied: number; deniedBy: Record<string, number> };
  drops: Record<string, number>;
}
