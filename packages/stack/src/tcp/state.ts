/** RFC 793 connection states. */
export enum TcpState {
  Closed = "CLOSED",
  SynSent = "SYN-SENT",
  SynReceived = "SYN-RECEIVED",
  Established = "ESTABLISHED",
  FinWait1 = "FIN-WAIT-1",
  FinWait2 = "FIN-WAIT-2",
  CloseWait = "CLOSE-WAIT",
  Closing = "CLOSING",
  LastAck = "LAST-ACK",
  TimeWait = "TIME-WAIT",
}

/** States in which the peer may still send us data. */
export function canReceive(s: TcpState): boolean {
  return s === TcpState.Established || s === TcpState.FinWait1 || s === TcpState.FinWait2;
}
