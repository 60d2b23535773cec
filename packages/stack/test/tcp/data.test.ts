import { describe, expect, it } from "vitest";
import { TcpState } from "../../src/tcp/state.js";
import {
  Ack,
  expectSegment,
  Flags,
  Len,
  Sack,
  Seq,
  TcpHarness,
  Window,
} from "../../src/testing/tcp-harness.js";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN } from "../../src/wire/tcp.js";

/** Bytes whose value encodes their offset, so misplaced data cannot pass for the right data. */
const pattern = (offset: number, len: number) =>
  Buffer.from(Array.from({ length: len }, (_, i) => (offset + i) % 251));

const RCV = 1001; // peer ISN 1000 + SYN

describe("ESTABLISHED receive", () => {
  it("ESTABLISHED in-order data → delivered, ACK coalesced until flush", () => {
    const h = TcpHarness.established({}, {});
    h.autoFlush = false;
    h.peerSend({ payload: pattern(0, 100) });
    h.peerSend({ payload: pattern(100, 100) });
    expect(h.received).toEqual(pattern(0, 200));
    expect(h.out).toHaveLength(0);
    expect(h.events.flushRequests).toBeGreaterThan(0);
    h.conn.flush();
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(h.iss + 1), Ack(RCV + 200), Len(0));
    h.conn.flush();
    expect(h.out).toHaveLength(1); // nothing owed any more
  });

  it("ESTABLISHED delayed ACK: one small segment is ACKed by our reply within the delay, else when it ends", () => {
    const h = TcpHarness.established({ delayedAckMs: 5 }, {});
    h.autoFlush = false;
    h.peerSend({ payload: pattern(0, 100) });
    h.conn.flush();
    expect(h.out).toHaveLength(0);
    // The reply carries the ACK: one segment, not an ACK and then the data.
    h.conn.send(pattern(0, 10));
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Ack(RCV + 100), Len(10));
    h.advance(10);
    expect(h.out.filter((s) => s.payload.length === 0)).toHaveLength(0);
    // No reply: the ACK leaves when the delay ends.
    h.peerSend({ seq: RCV + 100, payload: pattern(100, 100) });
    h.conn.flush();
    const before = h.out.length;
    h.advance(4);
    expect(h.out).toHaveLength(before);
    h.advance(1);
    expect(h.out).toHaveLength(before + 1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Ack(RCV + 200), Len(0));
  });

  it("ESTABLISHED delayed ACK: the peer's FIN is ACKed by our own FIN within the delay, else when it ends", () => {
    const h = TcpHarness.established({ delayedAckMs: 5 }, {});
    h.autoFlush = false;
    h.peerSend({ flags: TCP_ACK | TCP_FIN });
    h.conn.flush();
    expect(h.state).toBe(TcpState.CloseWait);
    expect(h.events.fin).toBe(1);
    expect(h.out).toHaveLength(0);
    // Our close answers within the delay: one FIN that also ACKs theirs.
    h.conn.close();
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Flags(TCP_ACK | TCP_FIN, true), Ack(RCV + 1), Len(0));

    // An application that does not close: the ACK leaves when the delay ends.
    const late = TcpHarness.established({ delayedAckMs: 5 }, {});
    late.autoFlush = false;
    late.peerSend({ flags: TCP_ACK | TCP_FIN });
    late.conn.flush();
    late.advance(4);
    expect(late.out).toHaveLength(0);
    late.advance(1);
    expect(late.out).toHaveLength(1);
    expectSegment(late.lastOut, Flags(TCP_ACK, true), Ack(RCV + 1), Len(0));
  });

  it("ESTABLISHED delayed ACK: two full segments are ACKed at the flush", () => {
    const h = TcpHarness.established({ delayedAckMs: 5, mss: 1000 }, { mss: 1000 });
    h.autoFlush = false;
    h.peerSend({ payload: pattern(0, 1000) });
    h.peerSend({ seq: RCV + 1000, payload: pattern(1000, 1000) });
    h.conn.flush();
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Ack(RCV + 2000), Len(0));
  });

  it("ESTABLISHED out-of-order segment → held, immediate duplicate ACK with a SACK block", () => {
    const h = TcpHarness.established();
    h.peerSend({ seq: RCV + 100, payload: pattern(100, 100) });
    expect(h.received.length).toBe(0);
    expect(h.conn.info().outOfOrder).toBe(100);
    expectSegment(h.lastOut, Flags(TCP_ACK), Ack(RCV), Sack([[RCV + 100, RCV + 200]]));
    h.peerSend({ seq: RCV, payload: pattern(0, 100) });
    expect(h.received).toEqual(pattern(0, 200));
    expectSegment(h.lastOut, Flags(TCP_ACK), Ack(RCV + 200), Sack(undefined));
    expect(h.conn.info().outOfOrder).toBe(0);
  });

  it("ESTABLISHED out-of-order segment without SACK negotiated → duplicate ACK without SACK", () => {
    const h = TcpHarness.established({}, { sackPermitted: false });
    h.peerSend({ seq: RCV + 100, payload: pattern(100, 100) });
    expectSegment(h.lastOut, Flags(TCP_ACK), Ack(RCV), Sack(undefined));
  });

  it("ESTABLISHED two holes → two SACK blocks, partial fill ACKed at once", () => {
    const h = TcpHarness.established();
    h.peerSend({ seq: RCV + 300, payload: pattern(300, 100) });
    h.peerSend({ seq: RCV + 100, payload: pattern(100, 100) });
    expectSegment(
      h.lastOut,
      Ack(RCV),
      Sack([
        [RCV + 100, RCV + 200],
        [RCV + 300, RCV + 400],
      ]),
    );
    h.clearOut();
    h.peerSend({ seq: RCV, payload: pattern(0, 100) });
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Ack(RCV + 200), Sack([[RCV + 300, RCV + 400]]));
    h.peerSend({ seq: RCV + 200, payload: pattern(200, 100) });
    expectSegment(h.lastOut, Ack(RCV + 400), Sack(undefined));
    expect(h.received).toEqual(pattern(0, 400));
  });

  // RFC 2018 section 4: "The first SACK block ... MUST specify the contiguous block of data
  // containing the segment which triggered this ACK". Assembler.blocks() reports blocks in
  // ascending sequence order, so the newest block is not first (and with more than 3 holes the
  // newest may not be reported at all).
  it("ESTABLISHED out-of-order segment above an earlier one → its block is the first SACK block", () => {
    const h = TcpHarness.established();
    h.peerSend({ seq: RCV + 100, payload: pattern(100, 100) });
    h.peerSend({ seq: RCV + 300, payload: pattern(300, 100) });
    expectSegment(
      h.lastOut,
      Ack(RCV),
      Sack([
        [RCV + 300, RCV + 400],
        [RCV + 100, RCV + 200],
      ]),
    );
  });

  it("ESTABLISHED overlapping retransmission → only the new bytes delivered", () => {
    const h = TcpHarness.established();
    h.peerSend({ seq: RCV, payload: pattern(0, 100) });
    h.peerSend({ seq: RCV + 50, payload: pattern(50, 100) });
    expect(h.received).toEqual(pattern(0, 150));
    expectSegment(h.lastOut, Ack(RCV + 150));
  });

  it("ESTABLISHED exact duplicate → duplicate ACK, nothing delivered twice", () => {
    const h = TcpHarness.established();
    h.peerSend({ seq: RCV, payload: pattern(0, 100) });
    h.clearOut();
    h.peerSend({ seq: RCV, payload: pattern(0, 100) });
    expect(h.received).toEqual(pattern(0, 100));
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Flags(TCP_ACK), Ack(RCV + 100), Len(0));
  });

  it("ESTABLISHED overlapping out-of-order segments → reassembled intact", () => {
    const h = TcpHarness.established();
    h.peerSend({ seq: RCV + 200, payload: pattern(200, 100) });
    h.peerSend({ seq: RCV + 250, payload: pattern(250, 150) });
    h.peerSend({ seq: RCV + 150, payload: pattern(150, 300) }); // covers both
    h.peerSend({ seq: RCV + 100, payload: pattern(100, 60) });
    h.peerSend({ seq: RCV + 450, payload: pattern(450, 10) });
    h.peerSend({ seq: RCV, payload: pattern(0, 120) });
    expect(h.received).toEqual(pattern(0, 460));
    expect(h.conn.info().outOfOrder).toBe(0);
    expectSegment(h.lastOut, Ack(RCV + 460));
  });

  it("ESTABLISHED segment beyond the window → ACK, not accepted", () => {
    const h = TcpHarness.established({ receiveBuffer: 8192 }, { windowScale: undefined });
    h.peerSend({ seq: RCV + 8192, payload: pattern(0, 10) });
    expectSegment(h.lastOut, Flags(TCP_ACK), Ack(RCV), Window(8192));
    expect(h.conn.info().outOfOrder).toBe(0);
    expect(h.received.length).toBe(0);
  });

  it("ESTABLISHED segment entirely before rcvNxt → duplicate ACK", () => {
    const h = TcpHarness.established();
    h.peerSend({ seq: RCV, payload: pattern(0, 100) });
    h.clearOut();
    h.peerSend({ seq: RCV + 10, payload: pattern(10, 50) });
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Ack(RCV + 100));
    expect(h.received).toEqual(pattern(0, 100));
  });

  it("ESTABLISHED segment straddling the right window edge → trimmed to the window", () => {
    const h = TcpHarness.established({ receiveBuffer: 1000 }, { windowScale: undefined });
    h.peerSend({ seq: RCV, payload: pattern(0, 1500) });
    expect(h.received).toEqual(pattern(0, 1000));
    expectSegment(h.lastOut, Ack(RCV + 1000));
  });

  it("ESTABLISHED ACK for data never sent → ACK, the segment's data dropped", () => {
    const h = TcpHarness.established();
    h.peerSend({ ack: h.iss + 1 + 500, payload: "zz" });
    expect(h.received.length).toBe(0);
    expectSegment(h.lastOut, Flags(TCP_ACK), Seq(h.iss + 1), Ack(RCV));
  });
});

describe("ESTABLISHED RST and SYN (RFC 5961)", () => {
  it("ESTABLISHED RST at exactly rcvNxt → reset", () => {
    const h = TcpHarness.established();
    h.peerSend({ flags: TCP_RST, seq: RCV });
    expect(h.closeReasons).toEqual(["reset"]);
    expect(h.state).toBe(TcpState.Closed);
    expect(h.out).toHaveLength(0);
    expect(h.conn.pollAt()).toBeUndefined();
  });

  it("ESTABLISHED RST in window but not exact → challenge ACK, stays ESTABLISHED", () => {
    const h = TcpHarness.established();
    h.peerSend({ flags: TCP_RST, seq: RCV + 10 });
    expect(h.closeReasons).toEqual([]);
    expect(h.state).toBe(TcpState.Established);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(h.iss + 1), Ack(RCV));
  });

  it("ESTABLISHED RST out of window → ignored silently", () => {
    const h = TcpHarness.established({ receiveBuffer: 8192 }, { windowScale: undefined });
    h.peerSend({ flags: TCP_RST, seq: RCV + 100_000 });
    expect(h.closeReasons).toEqual([]);
    expect(h.out).toHaveLength(0);
  });

  it("ESTABLISHED SYN → challenge ACK, stays ESTABLISHED", () => {
    const h = TcpHarness.established();
    h.peerSend({ flags: TCP_SYN, seq: RCV + 5 });
    expect(h.state).toBe(TcpState.Established);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(h.iss + 1), Ack(RCV));
    expect(h.closeReasons).toEqual([]);
  });
});

describe("ESTABLISHED send", () => {
  it("ESTABLISHED send → MSS-sized segments, PSH on the last, consecutive sequence numbers", () => {
    const h = TcpHarness.established();
    expect(h.conn.send(pattern(0, 3000))).toBe(true);
    expect(h.out.map((s) => s.payload.length)).toEqual([1460, 1460, 80]);
    expectSegment(h.out[0], Flags(TCP_ACK, true), Seq(h.iss + 1), Ack(RCV));
    expectSegment(h.out[1], Seq(h.iss + 1 + 1460));
    expectSegment(h.out[2], Flags(TCP_ACK | TCP_PSH, true), Seq(h.iss + 1 + 2920));
    expect(Buffer.concat(h.out.map((s) => s.payload))).toEqual(pattern(0, 3000));
  });

  it("ESTABLISHED send → limited by the initial congestion window (10 MSS), ACKs release more", () => {
    const h = TcpHarness.established();
    h.conn.send(pattern(0, 100_000));
    expect(h.out).toHaveLength(10);
    h.clearOut();
    const cwnd = h.conn.info().cwnd;
    h.peerSend({ ack: h.iss + 1 + 2 * 1460 });
    // Slow start with byte counting (RFC 5681, L = 1 SMSS): one ACK for 2 segments grows cwnd
    // by one MSS, so 2 + 1 segments go out.
    expect(h.conn.info().cwnd).toBe(cwnd + 1460);
    expect(h.out.map((s) => s.payload.length)).toEqual([1460, 1460, 1460]);
  });

  it("ESTABLISHED send with a scaled peer window → limited to window << wscale", () => {
    const h = TcpHarness.established({}, { windowScale: 4 });
    h.peerSend({ window: 200 }); // 3200 bytes
    h.conn.send(pattern(0, 10_000));
    expect(h.out.map((s) => s.payload.length)).toEqual([1460, 1460]);
    h.clearOut();
    h.peerSend({ ack: h.iss + 1 + 2920, window: 200 });
    expect(h.out.map((s) => s.payload.length)).toEqual([1460, 1460]);
  });

  it("ESTABLISHED small window with nothing in flight → sends what fits", () => {
    const h = TcpHarness.established({}, { windowScale: undefined });
    h.peerSend({ window: 700 });
    h.conn.send(pattern(0, 5000));
    expect(h.out.map((s) => s.payload.length)).toEqual([700]);
  });

  it("ESTABLISHED send beyond the send buffer → false, then onSendSpace once drained below half", () => {
    const h = TcpHarness.established({ sendBuffer: 10_000 }, { windowScale: undefined });
    h.peerSend({ window: 0 });
    expect(h.conn.send(pattern(0, 6000))).toBe(true);
    expect(h.conn.send(pattern(6000, 6000))).toBe(false);
    expect(h.events.sendSpace).toBe(0);
    h.peerSend({ window: 65535 });
    expect(h.out.length).toBeGreaterThan(0);
    h.peerSend({ ack: h.iss + 1 + 5840 });
    expect(h.conn.sendBuffered).toBe(12_000 - 5840);
    expect(h.events.sendSpace).toBe(0);
    h.peerSend({ ack: h.iss + 1 + 8760 });
    expect(h.events.sendSpace).toBe(1);
  });

  it("ESTABLISHED abort → RST|ACK at sndNxt, closed as aborted", () => {
    const h = TcpHarness.established();
    h.conn.send(pattern(0, 100));
    h.conn.abort();
    expectSegment(h.lastOut, Flags(TCP_RST | TCP_ACK, true), Seq(h.iss + 101), Ack(RCV));
    expect(h.closeReasons).toEqual(["aborted"]);
    expect(h.conn.pollAt()).toBeUndefined();
    expect(h.conn.send(Buffer.from("x"))).toBe(false);
  });
});

describe("receive window", () => {
  it("ESTABLISHED unread backlog → advertised window shrinks by it", () => {
    const h = TcpHarness.established({ receiveBuffer: 65536 }, { windowScale: undefined });
    h.peerSend({ payload: pattern(0, 1000) });
    expectSegment(h.lastOut, Window(65535));
    h.backlog = 40_000;
    h.peerSend({ payload: pattern(1000, 1000) });
    // Never shrink the edge already promised (RCV+65535): the window may only drop by 1000.
    expectSegment(h.lastOut, Ack(RCV + 2000), Window(64535));
    // Data consumes the promise; once it falls below the buffer's real room, that shows.
    h.peerSend({ payload: pattern(2000, 30_000) });
    expectSegment(h.lastOut, Ack(RCV + 32_000), Window(66535 - 32_000));
    h.peerSend({ payload: pattern(32_000, 10_000) });
    expectSegment(h.lastOut, Ack(RCV + 42_000), Window(65536 - 40_000));
  });

  it("ESTABLISHED receiveSpaceOpened after the app drains → window update", () => {
    const h = TcpHarness.established({ receiveBuffer: 16384 }, { windowScale: undefined });
    h.backlog = 16384;
    h.peerSend({ payload: pattern(0, 16384) });
    expectSegment(h.lastOut, Ack(RCV + 16384), Window(0));
    h.clearOut();
    h.backlog = 16000; // 384 bytes consumed: not worth an update
    h.conn.receiveSpaceOpened();
    expect(h.out).toHaveLength(0);
    h.backlog = 0;
    h.conn.receiveSpaceOpened();
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Ack(RCV + 16384), Window(16384));
  });

  it("ESTABLISHED zero window → data refused with an ACK carrying window 0", () => {
    const h = TcpHarness.established({ receiveBuffer: 4096 }, { windowScale: undefined });
    h.backlog = 4096;
    h.peerSend({ payload: pattern(0, 4096) });
    h.clearOut();
    h.peerSend({ payload: pattern(4096, 1) }); // a peer's zero-window probe
    expect(h.received.length).toBe(4096);
    expectSegment(h.lastOut, Flags(TCP_ACK), Ack(RCV + 4096), Window(0));
  });

  // RFC 9293 3.10.7.4: "If the RCV.WND is zero, no segments will be acceptable, but special
  // allowance should be made to accept valid ACKs, URGs, and RSTs." Connection.onSegment drops the
  // whole segment when acceptable() fails (len > 0, window 0), so an ACK riding on a peer's
  // window probe is lost and our acknowledged data is retransmitted.
  it("ESTABLISHED zero receive window, peer probe carries an ACK → the ACK is still processed", () => {
    const h = TcpHarness.established({ receiveBuffer: 4096 }, { windowScale: undefined });
    h.backlog = 4096;
    h.peerSend({ payload: pattern(0, 4096) });
    h.conn.send(pattern(0, 100));
    expect(h.conn.sendBuffered).toBe(100);
    h.peerSend({ payload: pattern(4096, 1), ack: h.iss + 101 });
    expect(h.conn.sendBuffered).toBe(0);
  });

  it("ESTABLISHED out-of-order data beyond the window → trimmed, queue bounded by the window", () => {
    const h = TcpHarness.established({ receiveBuffer: 8192 }, { windowScale: undefined });
    h.peerSend({ seq: RCV + 4000, payload: pattern(4000, 8000) });
    expect(h.conn.info().outOfOrder).toBe(8192 - 4000);
    h.peerSend({ seq: RCV, payload: pattern(0, 4000) });
    expect(h.received).toEqual(pattern(0, 8192));
  });

  it("ESTABLISHED flood of tiny scattered out-of-order segments → bounded by the segment cap", () => {
    const h = TcpHarness.established({ receiveBuffer: 1 << 20 }, { windowScale: 7 });
    // Tell the peer a big window first (the handshake promised only 65535).
    h.peerSend({ payload: "a" });
    for (let i = 0; i < 3000; i++) h.peerSend({ seq: RCV + 2 + 2 * i, payload: "b" });
    const held = h.conn.info().outOfOrder;
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThanOrEqual(512);
    expect(h.received.toString()).toBe("a");
  });
});

describe("sequence wrap", () => {
  it("ESTABLISHED transfer across 2^32 both ways → intact", () => {
    const h = TcpHarness.established({ random: { u32: () => 0xffffff00 } }, { iss: 0xfffffe00 });
    expect(h.iss).toBe(0xffffff00);
    // Peer → us: 4 KiB starting at 0xfffffe01, partly out of order across the wrap.
    const base = 0xfffffe01;
    const at = (off: number) => (base + off) >>> 0;
    h.peerSend({ seq: at(2000), payload: pattern(2000, 2096) });
    h.peerSend({ seq: at(0), payload: pattern(0, 1000) });
    h.peerSend({ seq: at(1000), payload: pattern(1000, 1000) });
    expect(h.received).toEqual(pattern(0, 4096));
    expectSegment(h.lastOut, Ack(at(4096)));
    // Us → peer: 8 KiB starting at 0xffffff01, acknowledged piecewise across the wrap.
    h.clearOut();
    h.conn.send(pattern(0, 8192));
    let acked = 0;
    const sent: Buffer[] = [];
    for (let round = 0; round < 10 && acked < 8192; round++) {
      for (const s of h.takeOut()) if (s.payload.length > 0) sent.push(s.payload);
      acked = sent.reduce((n, b) => n + b.length, 0);
      h.peerSend({ ack: (0xffffff01 + acked) >>> 0 });
    }
    expect(Buffer.concat(sent)).toEqual(pattern(0, 8192));
    expect(h.conn.sendBuffered).toBe(0);
    expect(h.conn.pollAt()).toBeUndefined();
  });
});
