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
  tcp: {
    timeouts: number;
    fastRetransmits: number;
    segmentsRetransmitted: number;
    open: number;
    opened: number;
    closed: number;
    refused: number;
    reset: number;
    timedOut: number;
    /** TIME-WAIT connections freed early (table full, over the limit, or the 4-tuple reused). */
    timeWaitReclaimed: number;
    pendingConnects: number;
  };
  udp: { open: number; opened: number; closed: number; datagramsIn: number; datagramsOut: number };
  icmp: { echoReplies: number };
  arp: { requests: number; replies: number };
  drops: Record<string, number>;
  flows: FlowStats[];
}
