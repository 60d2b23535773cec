/** NewReno congestion control (RFC 5681, RFC 6582), in bytes. */
export class NewReno {
  cwnd: number;
  ssthresh = Number.MAX_SAFE_INTEGER;
  /** Set while in fast recovery: the sequence that must be acknowledged to leave it. */
  recoverySeq: number | undefined;

  constructor(private readonly mss: number) {
    this.cwnd = Math.min(10 * mss, Math.max(2 * mss, 14_600)); // RFC 6928 initial window
  }

  onAck(ackedBytes: number): void {
    if (this.cwnd < this.ssthresh) this.cwnd += Math.min(ackedBytes, this.mss);
    else this.cwnd += Math.max(1, Math.floor((this.mss * this.mss) / this.cwnd));
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
