/**
 * A connection in TIME-WAIT, reduced to what answering old duplicates takes (RFC 9293 3.10.7.4):
 * the numbers of its last ACK and the window it advertised. A flow table keeps this record for
 * the 2MSL wait instead of the whole connection, which is a few KiB of objects (a host that
 * closes connections first leaves thousands of them).
 */
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, type TcpSegment } from "../wire/tcp.js";
import { seqDiff } from "./seq.js";

export interface TimeWaitRecord {
  /** Our next sequence number, our FIN counted: every ACK from TIME-WAIT carries it. */
  readonly seq: number;
  /** The peer's next sequence number, its FIN counted. */
  readonly ack: number;
  /** The window field of our last ACK, as sent (already scaled down). */
  readonly window: number;
  /** That window in bytes, for judging an RST. */
  readonly windowBytes: number;
}

/**
 * - "close": an RST at exactly `ack` ends the wait (RFC 5961 3.2, as Linux does by default);
 * - "ack": answer with our last ACK (a challenge ACK, or a segment outside the window);
 * - "ack-restart": the peer's FIN came again, our ACK was lost: answer and restart the 2MSL wait;
 * - "ignore": an old duplicate that needs no answer.
 */
export type TimeWaitAnswer = "close" | "ack" | "ack-restart" | "ignore";

/**
 * What a segment for a 4-tuple in TIME-WAIT calls for. A SYN without ACK may open a new
 * connection on the same 4-tuple: that is the table's to decide before asking here.
 */
export function timeWaitAnswer(tw: TimeWaitRecord, seg: TcpSegment): TimeWaitAnswer {
  if (seg.flags & TCP_RST) {
    if (seg.seq === tw.ack) return "close";
    const offset = seqDiff(seg.seq, tw.ack);
    return offset > 0 && offset < tw.windowBytes ? "ack" : "ignore";
  }
  if (seg.flags & TCP_FIN) return "ack-restart";
  if (seg.flags & TCP_SYN) return "ack";
  // Without ACK a segment is dropped (RFC 9293 3.10.7.4, fifth check).
  if (!(seg.flags & TCP_ACK)) return "ignore";
  // The peer's last ACK again is an old duplicate; data, or any other number, is out of window.
  return seg.payload.length === 0 && seg.seq === tw.ack ? "ignore" : "ack";
}
