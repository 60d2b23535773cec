import type { TcpEmitFields } from "../wire/tcp.js";

/** What the transport layers need from the interface to send packets to a guest. */
export interface IpOutput {
  /**
   * `segmentSize`: the payload is larger than one segment and the link may cut it into segments
   * of this size (TSO); only passed when the link reported TSO.
   */
  sendTcp(
    srcIp: number,
    dstIp: number,
    fields: TcpEmitFields,
    payload: Buffer | undefined,
    segmentSize?: number,
  ): void;
  sendUdp(srcIp: number, dstIp: number, srcPort: number, dstPort: number, payload: Buffer): void;
  /** ICMP destination unreachable quoting `original` (the guest's IP header + 8 bytes). */
  sendUnreachable(srcIp: number, dstIp: number, code: number, original: Buffer): void;
}
