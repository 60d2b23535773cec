import { seqAdd, seqDiff, seqGe, seqGt, seqLt } from "./seq.js";

/** Most SACK ranges remembered: beyond, the lowest are forgotten (they are repaired first anyway). */
const MAX_RANGES = 32;

/**
 * The SACK scoreboard (RFC 6675): ranges beyond snd.una the peer reported holding, ascending and
 * merged, plus HighRxt, the highest sequence resent in the current recovery.
 */
export class SackScoreboard {
  private ranges: [number, number][] = [];
  /** Highest sequence retransmitted in this recovery (RFC 6675 HighRxt). */
  highRxt = 0;

  get isEmpty(): boolean {
    return this.ranges.length === 0;
  }

  /** Bytes the peer reported holding above snd.una. */
  sackedBytes(): number {
    let n = 0;
    for (const [l, r] of this.ranges) n += seqDiff(r, l);
    return n;
  }

  /** Merges the peer's blocks and forgets what `ack` passed; stale or bogus blocks are ignored. */
  update(blocks: [number, number][], ack: number, sndMax: number): void {
    const board = this.ranges.filter(([, r]) => seqGt(r, ack));
    for (const [l, r] of blocks) {
      if (!seqGt(r, l) || !seqGt(r, ack) || seqGt(r, sndMax)) continue;
      board.push([seqGt(l, ack) ? l : ack, r]);
    }
    board.sort((a, b) => seqDiff(a[0], b[0]));
    const merged: [number, number][] = [];
    for (const b of board) {
      const last = merged[merged.length - 1];
      if (last && seqGe(last[1], b[0])) {
        if (seqGt(b[1], last[1])) last[1] = b[1];
      } else merged.push([b[0], b[1]]);
    }
    this.ranges = merged.slice(-MAX_RANGES);
  }

  /**
   * The next hole to resend (a simplified RFC 6675 NextSeg): the first byte at or above
   * max(HighRxt, snd.una) that the peer lacks, below a SACKed range, and how far it goes.
   */
  nextHole(sndUna: number): { start: number; end: number } | undefined {
    let start = seqGt(this.highRxt, sndUna) ? this.highRxt : sndUna;
    for (const [l, r] of this.ranges) {
      if (seqLt(start, l)) return { start, end: l };
      if (seqLt(start, r)) start = r;
    }
    return undefined;
  }

  /** Notes a retransmission of [seq, seq + len). */
  resent(seq: number, len: number): void {
    const end = seqAdd(seq, len);
    if (seqGt(end, this.highRxt)) this.highRxt = end;
  }

  clear(): void {
    this.ranges = [];
  }
}
