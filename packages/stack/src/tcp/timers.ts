/**
 * A connection's timers as absolute deadlines (clock milliseconds; undefined = not armed). The
 * connection never sets a real timer: its owner asks `next()` when to call `poll(now)`.
 */
export class ConnectionTimers {
  /** Retransmission (RFC 6298). */
  rto: number | undefined;
  /** Zero-window probe. */
  persist: number | undefined;
  /** End of TIME-WAIT (2MSL). */
  timeWait: number | undefined;
  /** An orphan's FIN-WAIT-2 limit. */
  idle: number | undefined;
  /** Next keepalive probe. */
  keepAlive: number | undefined;
  /** A delayed ACK is owed by then. */
  delayedAck: number | undefined;

  next(): number | undefined {
    let at: number | undefined;
    for (const t of [this.rto, this.persist, this.timeWait, this.idle, this.keepAlive, this.delayedAck]) {
      if (t !== undefined && (at === undefined || t < at)) at = t;
    }
    return at;
  }

  clear(): void {
    this.rto = this.persist = this.timeWait = this.idle = this.keepAlive = this.delayedAck = undefined;
  }
}
