/** timeWaitAnswer: what each kind of segment gets from a 4-tuple in TIME-WAIT. */
import { describe, expect, it } from "vitest";
import { type TimeWaitRecord, timeWaitAnswer } from "../../src/tcp/time-wait.js";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, type TcpSegment } from "../../src/wire/tcp.js";

const tw: TimeWaitRecord = { seq: 5000, ack: 0xfffffff0, window: 64, windowBytes: 64 * 128 };

function seg(flags: number, seq: number, payload = 0): TcpSegment {
  return {
    srcPort: 40000,
    dstPort: 80,
    seq,
    ack: tw.seq,
    flags,
    window: 100,
    payload: Buffer.alloc(payload),
  } as TcpSegment;
}

describe("timeWaitAnswer", () => {
  it("ends the wait on an RST at exactly the next sequence number", () => {
    expect(timeWaitAnswer(tw, seg(TCP_RST, tw.ack))).toBe("close");
    expect(timeWaitAnswer(tw, seg(TCP_RST | TCP_ACK, tw.ack))).toBe("close");
  });

  it("answers an RST elsewhere in the window with a challenge ACK, across the wrap (RFC 5961)", () => {
    // 0xfffffff0 + 0x20 wraps past zero and is still inside the 8 KiB window.
    expect(timeWaitAnswer(tw, seg(TCP_RST, 0x10))).toBe("ack");
    expect(timeWaitAnswer(tw, seg(TCP_RST, (tw.ack + tw.windowBytes - 1) >>> 0))).toBe("ack");
  });

  it("ignores an RST outside the window", () => {
    expect(timeWaitAnswer(tw, seg(TCP_RST, (tw.ack + tw.windowBytes) >>> 0))).toBe("ignore");
    expect(timeWaitAnswer(tw, seg(TCP_RST, (tw.ack - 1) >>> 0))).toBe("ignore");
  });

  it("acknowledges a retransmitted FIN again and restarts the wait", () => {
    expect(timeWaitAnswer(tw, seg(TCP_FIN | TCP_ACK, (tw.ack - 1) >>> 0))).toBe("ack-restart");
  });

  it("answers a SYN with ACK, data, or another sequence number with our ACK", () => {
    expect(timeWaitAnswer(tw, seg(TCP_SYN | TCP_ACK, 1))).toBe("ack");
    expect(timeWaitAnswer(tw, seg(TCP_ACK | TCP_PSH, tw.ack, 10))).toBe("ack");
    expect(timeWaitAnswer(tw, seg(TCP_ACK, (tw.ack + 100) >>> 0))).toBe("ack");
  });

  it("ignores the peer's last ACK again, and a segment without ACK", () => {
    expect(timeWaitAnswer(tw, seg(TCP_ACK, tw.ack))).toBe("ignore");
    expect(timeWaitAnswer(tw, seg(0, (tw.ack + 5) >>> 0, 3))).toBe("ignore");
  });
});
