import type { Duplex } from "node:stream";

/** A guest flow as the policy hook sees it. */
export interface FlowInfo {
  protocol: "tcp" | "udp";
  guestIp: string;
  guestPort: number;
  dstIp: string;
  dstPort: number;
}

/** Replies to a guest datagram; the reply appears to come from the flow's destination. */
export type DatagramReply = (data: Buffer) => void;
export type DatagramHandler = (message: Buffer, flow: FlowInfo, reply: DatagramReply) => void;
export type StreamHandler = (stream: Duplex, flow: FlowInfo) => void;

/** The name flow listings and metrics show for flows a decision handled ("dns", "proxy", "agent"). */
export interface DecisionLabel {
  service?: string;
}

export type TcpDecision =
  /** Connect a host socket (to `host`/`port` when given, else the flow's own destination). */
  | ({ action: "nat"; host?: string; port?: number } & DecisionLabel)
  /** Serve the flow in-process: the handler gets the guest connection as a Duplex. */
  | ({ action: "handle"; handler: StreamHandler } & DecisionLabel)
  /** Refuse the connection (RST). */
  | { action: "reject" };

export type UdpDecision =
  | ({ action: "nat"; host?: string; port?: number } & DecisionLabel)
  | ({ action: "handle"; handler: DatagramHandler } & DecisionLabel)
  /** Drop with ICMP port unreachable. */
  | { action: "reject" };

/**
 * Per-flow decisions of the composer. Returning undefined applies the default:
 * the host address goes to the host's 127.0.0.1, the gateway refuses, anything else is NATed as is.
 */
export interface FlowPolicy {
  tcp?(flow: FlowInfo): TcpDecision | undefined;
  udp?(flow: FlowInfo): UdpDecision | undefined;
}

/** The decision when the policy has none: the gateway refuses (nothing listens there), the rest is NATed. */
export function defaultDecision(dstIsGateway: boolean): { action: "nat" } | { action: "reject" } {
  return dstIsGateway ? { action: "reject" } : { action: "nat" };
}
