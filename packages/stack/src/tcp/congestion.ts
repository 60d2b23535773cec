/** NewReno congestion control (RFC 5681, RFC 6582), in bytes. */
export class NewReno {
  cwnd: number;
  ssthresh = Number.MAX_SAFE_INTEGER;
  /** Set while in fast recovery: the sequence that must be acknowledged to leave it. */
  recoverySeq: number | undefined;

  /**
   * `ackLimit`: most bytes one ACK may grow the window by (RFC 3465's L; default one MSS). A link
   * with TSO makes the peer acknowledge whole super-segments, so it is raised to one of those.
   */
  constructor(
    private readonly mss: number,
    private readonly ackLimit = mss,
  ) {
    this.cwnd = Math.min(10 * mss, Math.max(2 * mss, 14_600)); // RFC 6928 initial window
  }

  onAck(ackedBytes: number): void {
    if (this.cwnd < this.ssthresh) this.cwnd += Math.min(ackedBytes, this.ackLimit);
    else if (this.ackLimit === this.mss)
      this.cwnd += Math.max(1, Math.floor((this.mss * this.mss) / this.cwnd));
    // Byte counting: one MSS per window's worth of acknowledged bytes, however few the ACKs.
    else this.cwnd += Math.max(1, Math.floor((this.mss * Math.min(ackedBytes, this.ackLimit)) / this.cwnd));
  }

  /** Third duplicate ACK: enter fast recovery. */
  onFastRetransmit(inflight: number, recoverySeq: number): void {
    this.ssthresh = Math.max(Math.floor(inflight / 2), 2 * this.mss);
    this.cwnd = this.ssthresh + 3 * this.mss;
    this.recoverySeq = recoverySeq;
  }

  /** Each further duplicate ACK in recovery means a segment left the network. */
  onDupAckInRecovery(): void {
    this.cwnd += this.mss;
  }

  /** A full ACK ends recovery; the window deflates to ssthresh. */
  onRecoveryEnd(): void {
    this.cwnd = this.ssthresh;
    this.recoverySeq = undefined;
  }

  onTimeout(inflight: number): void {
    this.ssthresh = Math.max(Math.floor(inflight / 2), 2 * this.mss);
    this.cwnd = this.mss;
    this.recoverySeq = undefined;
  }
}
