import { describe, expect, it } from "vitest";
import { TcpState } from "../../src/tcp/state.js";
import { Ack, expectSegment, Flags, Len, Seq, TcpHarness } from "../../src/testing/tcp-harness.js";
import { TCP_ACK, TCP_FIN, TCP_RST } from "../../src/wire/tcp.js";

const MSS = 1460;
const data = (len: number) => Buffer.from(Array.from({ length: len }, (_, i) => i % 251));
const RCV = 1001;

describe("retransmission timeout (RFC 6298)", () => {
  it("ESTABLISHED RTO expiry → first unacked segment resent at 1 s, 3 s, 7 s", () => {
    const h = TcpHarness.established();
    const una = h.iss + 1;
    h.conn.send(data(3 * MSS));
    expect(h.conn.pollAt()).toBe(1000);
    h.clearOut();
    h.advance(999);
    expect(h.out).toHaveLength(0);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      h.fireNextTimer();
      times.push(h.now);
      // Go back to snd.una with cwnd = 1 MSS: exactly one segment per expiry.
      const out = h.takeOut();
      expect(out).toHaveLength(1);
      expectSegment(out[0], Flags(TCP_ACK), Seq(una), Len(MSS), Ack(RCV));
    }
    expect(times).toEqual([1000, 3000, 7000]);
    expect(h.conn.info().rto).toBe(8000);
  });

  it("ESTABLISHED ACK after an RTO → go-back-N resends the rest, backoff cleared", () => {
    const h = TcpHarness.established();
    const una = h.iss + 1;
    h.conn.send(data(3 * MSS));
    h.advance(1000);
    h.clearOut();
    h.peerSend({ ack: una + MSS });
    // cwnd 1 MSS grew to 2 MSS: the two later segments are sent again from snd.una.
    expect(h.out.map((s) => [s.seq, s.payload.length])).toEqual([
      [(una + MSS) >>> 0, MSS],
      [(una + 2 * MSS) >>> 0, MSS],
    ]);
    expect(h.conn.info().rto).toBe(1000);
    expect(h.conn.pollAt()).toBe(h.now + 1000);
  });

  it("ESTABLISHED ACK after 100 ms → RTO = SRTT + 4·RTTVAR = 300 ms", () => {
    const h = TcpHarness.established();
    h.conn.send(data(100));
    h.advance(100);
    h.peerSend({ ack: h.iss + 101 });
    expect(h.conn.info()).toMatchObject({ srtt: 100, rto: 300 });
    expect(h.conn.pollAt()).toBeUndefined();
    h.conn.send(data(100));
    expect(h.conn.pollAt()).toBe(h.now + 300);
    h.clearOut();
    h.advance(300);
    expectSegment(h.lastOut, Seq(h.iss + 101), Len(100));
  });

  it("ESTABLISHED ACK after 10 ms → RTO floored at 200 ms", () => {
    const h = TcpHarness.established();
    h.conn.send(data(100));
    h.advance(10);
    h.peerSend({ ack: h.iss + 101 });
    expect(h.conn.info().rto).toBe(200);
  });

  it("ESTABLISHED ACK of a retransmitted segment → no RTT sample (Karn)", () => {
    const h = TcpHarness.established();
    h.conn.send(data(100));
    h.advance(1000);
    h.advance(50);
    h.peerSend({ ack: h.iss + 101 });
    expect(h.conn.info().srtt).toBeUndefined();
    expect(h.conn.info().rto).toBe(1000);
  });

  it("ESTABLISHED RTO beyond maxRetransmits → RST|ACK and timeout", () => {
    const h = TcpHarness.established({ maxRetransmits: 2 });
    h.conn.send(data(100));
    h.advance(6999);
    expect(h.closeReasons).toEqual([]);
    h.advance(1);
    // The RST carries snd.nxt (after the last go-back-N resend), like abort().
    expectSegment(h.lastOut, Flags(TCP_RST | TCP_ACK, true), Seq(h.iss + 101));
    expect(h.closeReasons).toEqual(["timeout"]);
    expect(h.state).toBe(TcpState.Closed);
  });
});

describe("RTO rewind", () => {
  // Connection.onRetransmitTimeout rewinds sndNxt to sndUna (connection.ts:663) and sendAck()
  // (connection.ts:558) stamps pure ACKs with seq = sndNxt. A peer that already holds everything
  // up to sndMax (only its ACK was lost) has rcvNxt = sndMax > SEG.SEQ, finds the ACK
  // unacceptable (RFC 9293 3.10.7.4) and drops it with the ACK field unread. When both sides are
  // in that position neither ever learns the other's ACK: the seeded simulation livelocks into
  // "timeout" on both sides.
  it("ESTABLISHED RTO rewind, pure ACK → sequence number is the highest sent (snd.max)", () => {
    const h = TcpHarness.established();
    h.conn.send(data(3 * MSS));
    const sndMax = h.ourNxt;
    h.advance(1000); // RTO: segment 1 resent, sndNxt = una + MSS
    h.clearOut();
    h.peerSend({ ack: h.iss + 1, payload: "x" }); // the peer's ACKs were lost; it sends data
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Len(0), Ack(RCV + 1), Seq(sndMax));
  });
});

describe("fast retransmit and NewReno (RFC 5681, RFC 6582)", () => {
  it("ESTABLISHED third duplicate ACK → the missing segment is resent at once", () => {
    const h = TcpHarness.established();
    const una = h.iss + 1;
    h.conn.send(data(10 * MSS));
    h.peerSend({ ack: una + MSS }); // segment 2 lost
    const cwndBefore = h.conn.info().cwnd;
    h.clearOut();
    const flight = h.ourNxt - (una + MSS);
    h.peerSend({ ack: una + MSS });
    h.peerSend({ ack: una + MSS });
    expect(h.out.filter((s) => s.seq === (una + MSS) >>> 0)).toHaveLength(0);
    h.peerSend({ ack: una + MSS });
    const resent = h.out.filter((s) => s.seq === (una + MSS) >>> 0);
    expect(resent).toHaveLength(1);
    expectSegment(resent[0], Len(MSS));
    expect(cwndBefore).toBeGreaterThan(0);
    // ssthresh = flight/2; cwnd = ssthresh + 3 MSS.
    expect(h.conn.info().cwnd).toBe(Math.max(Math.floor(flight / 2), 2 * MSS) + 3 * MSS);
  });

  it("ESTABLISHED two segments, the FIN on the second, the first lost → resent at the first duplicate ACK", () => {
    // Early retransmit (RFC 5827): two segments in flight can bring one duplicate ACK only. The
    // FIN riding on the second is a sequence number, not a third segment to wait for.
    const h = TcpHarness.established();
    const una = h.iss + 1;
    // A closed window holds both segments until the FIN is queued behind them.
    h.peerSend({ ack: una, window: 0 });
    h.conn.send(data(2 * MSS));
    h.conn.close();
    h.clearOut();
    h.peerSend({ ack: una, window: 65535 });
    expect(
      h.out.filter((s) => s.payload.length > 0).map((s) => [s.payload.length, s.flags & TCP_FIN]),
    ).toEqual([
      [MSS, 0],
      [MSS, TCP_FIN],
    ]);
    h.clearOut();
    h.peerSend({ ack: una, sack: [[una + MSS, una + 2 * MSS]] });
    const resent = h.out.filter((s) => s.seq === una >>> 0 && s.payload.length > 0);
    expect(resent).toHaveLength(1);
    expectSegment(resent[0], Len(MSS));
  });

  it("ESTABLISHED duplicate ACK with a window change → not counted", () => {
    const h = TcpHarness.established();
    const una = h.iss + 1;
    h.conn.send(data(10 * MSS));
    h.peerSend({ ack: una + MSS });
    h.clearOut();
    h.peerSend({ ack: una + MSS, window: 60000 });
    h.peerSend({ ack: una + MSS, window: 50000 });
    h.peerSend({ ack: una + MSS, window: 40000 });
    expect(h.out.filter((s) => s.seq === (una + MSS) >>> 0)).toHaveLength(0);
  });

  it("ESTABLISHED partial ACK in recovery → next hole resent at once; full ACK ends recovery", () => {
    const h = TcpHarness.established();
    const una = h.iss + 1;
    const seg = (i: number) => (una + i * MSS) >>> 0;
    h.conn.send(data(10 * MSS));
    h.peerSend({ ack: seg(1) }); // segments 2 and 5 lost
    for (let i = 0; i < 3; i++) h.peerSend({ ack: seg(1) });
    const recover = h.ourNxt;
    h.clearOut();
    // Retransmitted segment 2 fills the first hole; the receiver now acks up to segment 5.
    h.peerSend({ ack: seg(4) });
    const resent = h.out.filter((s) => s.seq === seg(4));
    expect(resent).toHaveLength(1);
    expect(h.conn.info().cwnd).toBeGreaterThanOrEqual(MSS);
    // Full ACK: recovery ends and cwnd deflates to ssthresh.
    h.peerSend({ ack: recover });
    const flightAtLoss = recover - seg(1);
    expect(h.conn.info().cwnd).toBe(Math.max(Math.floor(flightAtLoss / 2), 2 * MSS));
  });

  it("ESTABLISHED duplicate ACKs in recovery → window inflates, new data may flow", () => {
    const h = TcpHarness.established({}, { windowScale: 7 });
    const una = h.iss + 1;
    h.conn.send(data(40 * MSS));
    h.peerSend({ ack: una + MSS });
    for (let i = 0; i < 3; i++) h.peerSend({ ack: una + MSS });
    const cwnd = h.conn.info().cwnd;
    h.peerSend({ ack: una + MSS });
    expect(h.conn.info().cwnd).toBe(cwnd + MSS);
  });
});

describe("persist timer (zero window)", () => {
  it("ESTABLISHED zero window with data queued → probes at 1, 3, 7 s; window opens → data flows", () => {
    const h = TcpHarness.established({}, { windowScale: undefined });
    h.peerSend({ window: 0 });
    h.conn.send(data(500));
    expect(h.out).toHaveLength(0);
    expect(h.conn.pollAt()).toBe(h.now + 1000);
    const probes: number[] = [];
    for (let i = 0; i < 3; i++) {
      h.fireNextTimer();
      probes.push(h.now);
      // The probe uses an old sequence number so the peer must answer with its window.
      expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(h.iss), Len(0), Ack(RCV));
      h.peerSend({ window: 0 });
      expect(h.out.filter((s) => s.payload.length > 0)).toHaveLength(0);
    }
    expect(probes).toEqual([1000, 3000, 7000]);
    h.clearOut();
    h.peerSend({ window: 65535 });
    expect(h.out.map((s) => [s.seq, s.payload.length])).toEqual([[(h.iss + 1) >>> 0, 500]]);
    expect(h.conn.pollAt()).toBe(h.now + 1000); // now the RTO, not a probe
  });

  it("ESTABLISHED zero window, probe backoff capped at 60 s", () => {
    const h = TcpHarness.established({}, { windowScale: undefined });
    h.peerSend({ window: 0 });
    h.conn.send(data(10));
    let last = 0;
    for (let i = 0; i < 10; i++) {
      h.fireNextTimer();
      last = h.now;
    }
    h.fireNextTimer();
    expect(h.now - last).toBe(60_000);
    expect(h.closeReasons).toEqual([]);
  });

  it("ESTABLISHED window shrinks to zero while data is in flight → ACK of the flight arms the probe", () => {
    const h = TcpHarness.established({}, { windowScale: undefined });
    h.peerSend({ window: 2 * MSS });
    h.conn.send(data(2 * MSS));
    h.conn.send(data(3000));
    expect(h.out.filter((s) => s.payload.length > 0)).toHaveLength(2);
    h.clearOut();
    h.peerSend({ ack: h.iss + 1 + 2 * MSS, window: 0 });
    expect(h.out.filter((s) => s.payload.length > 0)).toHaveLength(0);
    const at = h.conn.pollAt();
    expect(at).toBeDefined();
    h.fireNextTimer();
    expectSegment(h.lastOut, Len(0), Seq(h.iss + 2 * MSS));
  });
});

describe("keepalive (RFC 9293 3.8.4)", () => {
  const ka = { keepAliveIdleMs: 60_000, keepAliveIntervalMs: 10_000, keepAliveProbes: 3 };

  it("ESTABLISHED idle → probe with snd.una - 1 after keepAliveIdleMs", () => {
    const h = TcpHarness.established(ka);
    h.advance(59_999);
    expect(h.out).toHaveLength(0);
    h.advance(1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(h.iss), Len(0), Ack(RCV));
  });

  it("ESTABLISHED probe answered → countdown restarts, connection lives", () => {
    const h = TcpHarness.established(ka);
    h.advance(60_000);
    h.peerSend({ flags: TCP_ACK });
    h.clearOut();
    h.advance(59_999);
    expect(h.out).toHaveLength(0);
    h.advance(1);
    expect(h.out).toHaveLength(1);
    expect(h.state).toBe(TcpState.Established);
  });

  it("ESTABLISHED probes unanswered → RST and timeout after the last one", () => {
    const h = TcpHarness.established(ka);
    h.advance(60_000 + 2 * 10_000);
    expect(h.out).toHaveLength(3);
    expect(h.closeReasons).toEqual([]);
    h.advance(10_000);
    expectSegment(h.lastOut, Flags(TCP_RST | TCP_ACK, true));
    expect(h.closeReasons).toEqual(["timeout"]);
  });

  it("ESTABLISHED without keepAliveIdleMs → silent for hours", () => {
    const h = TcpHarness.established();
    h.advance(10 * 3_600_000);
    expect(h.out).toHaveLength(0);
    expect(h.state).toBe(TcpState.Established);
  });
});
