/**
 * What a connection asks of its congestion control, in bytes. The connection reports events;
 * the algorithm owns cwnd, ssthresh and the recovery point.
 */
export interface CongestionControl {
  readonly cwnd: number;
  /** Set while in fast recovery: the sequence that must be acknowledged to leave it. */
  readonly recoverySeq: number | undefined;
  /** New data acknowledged outside recovery. */
  onAck(ackedBytes: number): void;
  /** Loss detected by duplicate ACKs or SACK: enter fast recovery. */
  onFastRetransmit(inflight: number, recoverySeq: number): void;
  /** A duplicate ACK during recovery. */
  onDupAckInRecovery(): void;
  /** A partial ACK during recovery (RFC 6582): `ackedBytes` left the network, one segment was resent. */
  onPartialAck(ackedBytes: number): void;
  /** A full ACK ends recovery. */
  onRecoveryEnd(): void;
  /** Retransmission timeout. */
  onTimeout(inflight: number): void;
}

/** Makes the congestion control of one connection, given its MSS and largest growth per ACK. */
export type CongestionFactory = (mss: number, ackLimit: number) => CongestionControl;

/** NewReno congestion control (RFC 5681, RFC 6582), in bytes. */
export class NewReno implements CongestionControl {
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

  /** Partial window deflation: what was acknowledged leaves, one segment (the resent one) enters. */
  onPartialAck(ackedBytes: number): void {
    this.cwnd = Math.max(this.cwnd - ackedBytes + this.mss, this.mss);
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

export const newReno: CongestionFactory = (mss, ackLimit) => new NewReno(mss, ackLimit);
