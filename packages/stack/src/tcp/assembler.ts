import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from "./seq.js";

interface Hole {
  seq: number;
  data: Buffer;
}

/**
 * Out-of-order segments held until the gap before them is filled. Bounded by bytes and
 * by segment count, so a peer sending tiny scattered segments cannot grow it without limit.
 */
export class Assembler {
  private segments: Hole[] = [];
  private bytes = 0;
  /** Sequence of the most recently inserted data: its block is reported first (RFC 2018 4). */
  private latest: number | undefined;

  constructor(private readonly maxSegments = 512) {}

  get size(): number {
    return this.bytes;
  }

  get count(): number {
    return this.segments.length;
  }

  /** Stores `data` at `seq`, trimming overlap with what is already held. Returns false when full. */
  insert(seq: number, data: Buffer): boolean {
    this.latest = seq;
    let i = 0;
    while (i < this.segments.length && seqLt(this.segments[i]!.seq, seq)) i++;
    // Trim against the previous segment.
    const prev = this.segments[i - 1];
    if (prev) {
      const prevEnd = seqAdd(prev.seq, prev.data.length);
      if (seqGe(prevEnd, seqAdd(seq, data.length))) return true; // fully covered
      if (seqGt(prevEnd, seq)) {
        data = data.subarray(seqDiff(prevEnd, seq));
        seq = prevEnd;
      }
    }
    // Drop following segments that this one covers; trim against a partial overlap.
    const end = seqAdd(seq, data.length);
    while (
      i < this.segments.length &&
      seqLe(seqAdd(this.segments[i]!.seq, this.segments[i]!.data.length), end)
    ) {
      this.bytes -= this.segments[i]!.data.length;
      this.segments.splice(i, 1);
    }
    const next = this.segments[i];
    if (next && seqLt(next.seq, end)) data = data.subarray(0, seqDiff(next.seq, seq));
    if (data.length === 0) return true;
    if (this.segments.length >= this.maxSegments) return false;
    // A copy: the segment may lie in a frame the link lends (see FrameMeta.lent).
    this.segments.splice(i, 0, { seq, data: Buffer.from(data) });
    this.bytes += data.length;
    return true;
  }

  /** Removes and returns the data that now continues from `rcvNxt`, in order. */
  takeContiguous(rcvNxt: number): Buffer[] {
    const out: Buffer[] = [];
    let next = rcvNxt;
    while (this.segments.length > 0) {
      const head = this.segments[0]!;
      if (seqGt(head.seq, next)) break;
      this.segments.shift();
      this.bytes -= head.data.length;
      const skip = seqDiff(next, head.seq);
      if (skip < head.data.length) {
        const part = head.data.subarray(skip);
        out.push(part);
        next = seqAdd(next, part.length);
      }
    }
    return out;
  }

  /** SACK blocks for what is held, most recent first is not tracked: ascending order. */
  blocks(max = 3): [number, number][] {
    const out: [number, number][] = [];
    for (const s of this.segments) {
      const end = seqAdd(s.seq, s.data.length);
      const last = out[out.length - 1];
      if (last && last[1] === s.seq) last[1] = end;
      else out.push([s.seq, end]);
    }
    const recent =
      this.latest === undefined
        ? -1
        : out.findIndex(([l, r]) => seqLe(l, this.latest!) && seqLt(this.latest!, r));
    if (recent > 0) out.unshift(...out.splice(recent, 1));
    return out.slice(0, max);
  }

  clear(): void {
    this.segments = [];
    this.bytes = 0;
  }
}
