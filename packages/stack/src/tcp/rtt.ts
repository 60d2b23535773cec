/** Retransmission timeout estimation per RFC 6298, with Linux's 200 ms floor rather than 1 s. */
export class RttEstimator {
  private srtt: number | undefined;
  private rttvar = 0;
  private base: number;
  private backoffShift = 0;

  constructor(
    private readonly minRto = 200,
    private readonly maxRto = 60_000,
    initialRto = 1_000,
  ) {
    this.base = initialRto;
  }

  /** Current RTO in ms, including exponential backoff. */
  get rto(): number {
    return Math.min(this.base * 2 ** this.backoffShift, this.maxRto);
  }

  get smoothed(): number | undefined {
    return this.srtt;
  }

  /** A round-trip sample from a segment that was not retransmitted (Karn's rule). */
  sample(rttMs: number): void {
    const r = Math.max(rttMs, 0);
    if (this.srtt === undefined) {
      this.srtt = r;
      this.rttvar = r / 2;
    } else {
      this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - r);
      this.srtt = 0.875 * this.srtt + 0.125 * r;
    }
    this.base = Math.min(Math.max(this.srtt + Math.max(1, 4 * this.rttvar), this.minRto), this.maxRto);
    this.backoffShift = 0;
  }

  /** Doubles the timeout after it expired (RFC 6298 5.5). */
  backoff(): void {
    if (this.rto < this.maxRto) this.backoffShift++;
  }

  /** New data was acknowledged: the backoff no longer applies. */
  resetBackoff(): void {
    this.backoffShift = 0;
  }
}
