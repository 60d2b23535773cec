import { describe, expect, it } from "vitest";
import { TcpState } from "../../src/tcp/state.js";
import { Ack, expectSegment, Flags, Len, Seq, TcpHarness } from "../../src/testing/tcp-harness.js";
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST } from "../../src/wire/tcp.js";

const RCV = 1001;

describe("active close", () => {
  it("ESTABLISHED close → FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED after timeWaitMs", () => {
    const h = TcpHarness.established({ timeWaitMs: 5000 });
    h.conn.close();
    expect(h.state).toBe(TcpState.FinWait1);
    expectSegment(h.lastOut, Flags(TCP_FIN | TCP_ACK, true), Seq(h.iss + 1), Ack(RCV), Len(0));
    h.peerSend({ ack: h.iss + 2 });
    expect(h.state).toBe(TcpState.FinWait2);
    h.peerSend({ flags: TCP_FIN | TCP_ACK });
    expect(h.state).toBe(TcpState.TimeWait);
    expect(h.events.fin).toBe(1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(h.iss + 2), Ack(RCV + 1));
    h.advance(4999);
    expect(h.closeReasons).toEqual([]);
    h.advance(1);
    expect(h.closeReasons).toEqual(["closed"]);
    expect(h.state).toBe(TcpState.Closed);
  });

  it("ESTABLISHED close with data queued → the FIN rides on the segment that ends the data", () => {
    const h = TcpHarness.established({}, { windowScale: undefined });
    h.peerSend({ window: 1000 });
    h.conn.send(Buffer.alloc(1500, 7));
    h.conn.close();
    expect(h.out.map((s) => [s.flags & TCP_FIN, s.payload.length])).toEqual([[0, 1000]]);
    expect(h.state).toBe(TcpState.Established); // FIN not sent yet
    expect(h.conn.send(Buffer.from("late"))).toBe(false);
    h.clearOut();
    h.peerSend({ ack: h.iss + 1001, window: 1000 });
    expect(h.out).toHaveLength(1);
    expectSegment(h.out[0], Flags(TCP_FIN | TCP_ACK | TCP_PSH, true), Seq(h.iss + 1001), Len(500));
    expect(h.state).toBe(TcpState.FinWait1);
    // An ACK of the data alone leaves the FIN outstanding; the ACK of both moves on.
    h.peerSend({ ack: h.iss + 1501 });
    expect(h.state).toBe(TcpState.FinWait1);
    h.peerSend({ ack: h.iss + 1502 });
    expect(h.state).toBe(TcpState.FinWait2);
  });

  it("data and FIN sent together and lost → the resend after the timeout carries both again", () => {
    const h = TcpHarness.established();
    // Held for more (as a stream's writes are until the flush), then closed: one segment.
    h.conn.send(Buffer.from("last words"), true);
    expect(h.out).toHaveLength(0);
    h.conn.close();
    expect(h.out).toHaveLength(1);
    expectSegment(h.out[0], Flags(TCP_FIN | TCP_ACK | TCP_PSH, true), Seq(h.iss + 1), Len(10));
    h.clearOut();
    h.fireNextTimer(); // the retransmission timeout
    expect(h.out).toHaveLength(1);
    expectSegment(h.out[0], Flags(TCP_FIN | TCP_ACK | TCP_PSH, true), Seq(h.iss + 1), Len(10));
    expect(h.conn.recovery.segmentsRetransmitted).toBe(1);
    h.clearOut();
    // Only the data arrived: the FIN alone goes again at the next timeout.
    h.peerSend({ ack: h.iss + 11 });
    expect(h.out).toHaveLength(0);
    h.fireNextTimer();
    expectSegment(h.lastOut, Flags(TCP_FIN | TCP_ACK, true), Seq(h.iss + 11), Len(0));
    h.peerSend({ ack: h.iss + 12 });
    expect(h.state).toBe(TcpState.FinWait2);
  });

  it("FIN-WAIT-1 FIN|ACK acknowledging our FIN → TIME-WAIT", () => {
    const h = TcpHarness.established();
    h.conn.close();
    h.peerSend({ flags: TCP_FIN | TCP_ACK, ack: h.iss + 2 });
    expect(h.state).toBe(TcpState.TimeWait);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Ack(RCV + 1));
  });

  it("FIN-WAIT-1 FIN without the ACK of ours → CLOSING; ACK → TIME-WAIT (simultaneous close)", () => {
    const h = TcpHarness.established({ timeWaitMs: 1000 });
    h.conn.close();
    h.peerSend({ flags: TCP_FIN | TCP_ACK, ack: h.iss + 1 });
    expect(h.state).toBe(TcpState.Closing);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Ack(RCV + 1));
    h.peerSend({ ack: h.iss + 2 });
    expect(h.state).toBe(TcpState.TimeWait);
    h.advance(1000);
    expect(h.closeReasons).toEqual(["closed"]);
  });

  it("FIN-WAIT-1 RTO → FIN retransmitted with the same sequence number", () => {
    const h = TcpHarness.established();
    h.conn.close();
    const fin = h.lastOut!;
    h.clearOut();
    h.advance(1000);
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Flags(TCP_FIN | TCP_ACK, true), Seq(fin.seq));
    h.advance(2000);
    expect(h.out).toHaveLength(2);
    h.peerSend({ ack: h.iss + 2 });
    expect(h.state).toBe(TcpState.FinWait2);
  });

  it("FIN-WAIT-2 orphaned, new data → RST: nobody reads it", () => {
    const h = TcpHarness.established();
    h.conn.close();
    h.peerSend({ ack: h.iss + 2 });
    h.conn.orphan();
    h.peerSend({ payload: "late" });
    expectSegment(h.lastOut, Flags(TCP_RST | TCP_ACK, true));
    expect(h.closeReasons).toEqual(["aborted"]);
    expect(h.received.length).toBe(0);
  });

  it("FIN-WAIT-2 data → still delivered (half-close)", () => {
    const h = TcpHarness.established();
    h.conn.close();
    h.peerSend({ ack: h.iss + 2 });
    h.peerSend({ payload: "more" });
    expect(h.received.toString()).toBe("more");
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(h.iss + 2), Ack(RCV + 4));
  });

  it("FIN-WAIT-2 peer silent, owner still reading → no timeout", () => {
    const h = TcpHarness.established({ finWait2TimeoutMs: 10_000 });
    h.conn.close();
    h.peerSend({ ack: h.iss + 2 });
    h.advance(3_600_000);
    expect(h.state).toBe(TcpState.FinWait2);
    expect(h.closeReasons).toEqual([]);
  });

  it("FIN-WAIT-2 orphaned, peer silent → RST after finWait2TimeoutMs, segments restart the timer", () => {
    const h = TcpHarness.established({ finWait2TimeoutMs: 10_000 });
    h.conn.close();
    h.peerSend({ ack: h.iss + 2 });
    h.conn.orphan();
    h.advance(9000);
    h.peerSend({ flags: TCP_ACK });
    h.advance(9999);
    expect(h.closeReasons).toEqual([]);
    h.advance(1);
    expectSegment(h.lastOut, Flags(TCP_RST | TCP_ACK, true));
    expect(h.closeReasons).toEqual(["aborted"]);
  });

  it("TIME-WAIT retransmitted FIN → ACKed again, 2MSL restarted", () => {
    const h = TcpHarness.established({ timeWaitMs: 2000 });
    h.conn.close();
    h.peerSend({ ack: h.iss + 2 });
    h.peerSend({ flags: TCP_FIN | TCP_ACK });
    h.advance(1500);
    h.clearOut();
    h.peerSend({ flags: TCP_FIN | TCP_ACK, seq: RCV });
    expect(h.out).toHaveLength(1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(h.iss + 2), Ack(RCV + 1));
    h.advance(1999);
    expect(h.state).toBe(TcpState.TimeWait);
    h.advance(1);
    expect(h.closeReasons).toEqual(["closed"]);
  });
});

describe("passive close", () => {
  it("ESTABLISHED FIN → CLOSE-WAIT; send still works; close → LAST-ACK; ACK → CLOSED", () => {
    const h = TcpHarness.established();
    h.peerSend({ flags: TCP_FIN | TCP_ACK });
    expect(h.state).toBe(TcpState.CloseWait);
    expect(h.events.fin).toBe(1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Ack(RCV + 1));
    h.clearOut();
    h.conn.send(Buffer.from("bye"));
    expectSegment(h.lastOut, Seq(h.iss + 1), Len(3), Ack(RCV + 1));
    h.conn.close();
    expect(h.state).toBe(TcpState.LastAck);
    expectSegment(h.lastOut, Flags(TCP_FIN | TCP_ACK, true), Seq(h.iss + 4));
    h.peerSend({ ack: h.iss + 5 });
    expect(h.closeReasons).toEqual(["closed"]);
    expect(h.conn.pollAt()).toBeUndefined();
  });

  it("CLOSE-WAIT data from the peer → not delivered", () => {
    const h = TcpHarness.established();
    h.peerSend({ flags: TCP_FIN | TCP_ACK });
    h.peerSend({ seq: RCV + 1, payload: "after fin" });
    expect(h.received.length).toBe(0);
  });

  it("LAST-ACK RTO → FIN retransmitted; ACK of it → CLOSED", () => {
    const h = TcpHarness.established();
    h.peerSend({ flags: TCP_FIN | TCP_ACK });
    h.conn.close();
    const fin = h.lastOut!;
    h.clearOut();
    h.advance(1000);
    expectSegment(h.lastOut, Flags(TCP_FIN | TCP_ACK, true), Seq(fin.seq));
    h.peerSend({ ack: fin.seq + 1 });
    expect(h.closeReasons).toEqual(["closed"]);
  });

  it("ESTABLISHED data gap then FIN → FIN held until the gap fills", () => {
    const h = TcpHarness.established();
    h.peerSend({ flags: TCP_FIN | TCP_ACK, seq: RCV + 100, payload: Buffer.alloc(50, 2) });
    expect(h.state).toBe(TcpState.Established);
    expect(h.events.fin).toBe(0);
    expectSegment(h.lastOut, Ack(RCV));
    h.peerSend({ seq: RCV, payload: Buffer.alloc(100, 1) });
    expect(h.received).toEqual(Buffer.concat([Buffer.alloc(100, 1), Buffer.alloc(50, 2)]));
    expect(h.state).toBe(TcpState.CloseWait);
    expect(h.events.fin).toBe(1);
    expectSegment(h.lastOut, Ack(RCV + 151));
  });

  it("ESTABLISHED FIN alone out of order → held until the data before it arrives", () => {
    const h = TcpHarness.established();
    h.peerSend({ flags: TCP_FIN | TCP_ACK, seq: RCV + 10 });
    expect(h.state).toBe(TcpState.Established);
    h.peerSend({ seq: RCV, payload: Buffer.alloc(10, 1) });
    expect(h.state).toBe(TcpState.CloseWait);
    expectSegment(h.lastOut, Ack(RCV + 11));
  });
});

describe("other closes", () => {
  it("SYN-RECEIVED close → FIN sent once the handshake completes", () => {
    const h = TcpHarness.passive();
    h.conn.close();
    expect(h.state).toBe(TcpState.SynReceived);
    h.peerSend({ ack: h.iss + 1 });
    expect(h.state).toBe(TcpState.FinWait1);
    expectSegment(h.lastOut, Flags(TCP_FIN | TCP_ACK, true), Seq(h.iss + 1));
  });

  it("SYN-SENT close → CLOSED without a segment", () => {
    const h = TcpHarness.active();
    h.clearOut();
    h.conn.close();
    expect(h.closeReasons).toEqual(["closed"]);
    expect(h.out).toHaveLength(0);
  });

  it("SYN-RECEIVED abort → RST|ACK", () => {
    const h = TcpHarness.passive();
    h.conn.abort();
    expectSegment(h.lastOut, Flags(TCP_RST | TCP_ACK, true), Seq(h.iss + 1), Ack(RCV));
    expect(h.closeReasons).toEqual(["aborted"]);
  });

  it("CLOSED any segment → ignored", () => {
    const h = TcpHarness.established();
    h.conn.abort();
    h.clearOut();
    h.peerSend({ payload: "x" });
    expect(h.out).toHaveLength(0);
    expect(h.closeReasons).toEqual(["aborted"]);
  });
});
