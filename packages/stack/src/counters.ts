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

export interface FlowStats {
  protocol: "tcp" | "udp";
  guest: string;
  remote: string;
  state: string;
  bytesFromGuest: number;
  bytesToGuest: number;
}

export interface StackCounters {
  frames: { in: number; out: number; bytesIn: number; bytesOut: number };
  /** The flow table's counters, with the connections open and host connects pending now. */
  tcp: TcpCounters & { open: number; pendingConnects: number };
  udp: {
    open: number;
    opened: number;
    closed: number;
    datagramsIn: number;
    datagramsOut: number;
    /** Host datagrams from remotes the guest had not sent to, dropped by the NAT's filter. */
    unsolicited: number;
  };
  icmp: { echoReplies: number };
  arp: { requests: number; replies: number };
  /** Buffer bytes granted to TCP flows, against the global budget and each guest's share. */
  memory: { usedBytes: number; totalBytes: number; perGuestBytes: number };
  /** Guest flows the egress policy let out or refused, by rule id or default. */
  egress: { allowed: number; denied: number; deniedBy: Record<string, number> };
  drops: Record<string, number>;
  flows: FlowStats[];
}
