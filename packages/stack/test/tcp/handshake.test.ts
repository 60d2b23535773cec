import { describe, expect, it } from "vitest";
import { TcpState } from "../../src/tcp/state.js";
import {
  Ack,
  expectSegment,
  Flags,
  Len,
  Mss,
  SackPermitted,
  Seq,
  TcpHarness,
  Window,
  WindowScale,
} from "../../src/testing/tcp-harness.js";
import { TCP_ACK, TCP_RST, TCP_SYN } from "../../src/wire/tcp.js";

describe("passive open", () => {
  it("LISTEN SYN → SYN-RECEIVED, SYN-ACK with our options", () => {
    const h = TcpHarness.passive({ mss: 1460 }, { iss: 1000 });
    expect(h.state).toBe(TcpState.SynReceived);
    expect(h.out).toHaveLength(1);
    expectSegment(
      h.lastOut,
      Flags(TCP_SYN | TCP_ACK),
      Ack(1001),
      Len(0),
      Window(65535),
      Mss(1460),
      WindowScale(7),
      SackPermitted(true),
    );
    expect(h.events.established).toBe(0);
  });

  it("SYN-RECEIVED ACK → ESTABLISHED", () => {
    const h = TcpHarness.passive();
    h.peerSend({ flags: TCP_ACK, ack: h.iss + 1 });
    expect(h.state).toBe(TcpState.Established);
    expect(h.events.established).toBe(1);
    expect(h.out).toHaveLength(1); // a pure ACK is not answered
  });

  it("SYN-RECEIVED ACK carrying data → ESTABLISHED and data delivered", () => {
    const h = TcpHarness.passive();
    h.peerSend({ flags: TCP_ACK, ack: h.iss + 1, payload: "GET /" });
    expect(h.state).toBe(TcpState.Established);
    expect(h.received.toString()).toBe("GET /");
    expectSegment(h.lastOut, Flags(TCP_ACK), Seq(h.iss + 1), Ack(1001 + 5));
  });

  it("SYN-RECEIVED ACK for a sequence never sent → RST at that ack, stays SYN-RECEIVED", () => {
    const h = TcpHarness.passive();
    h.clearOut();
    h.peerSend({ flags: TCP_ACK, ack: h.iss + 50 });
    expectSegment(h.lastOut, Flags(TCP_RST, true), Seq(h.iss + 50));
    expect(h.state).toBe(TcpState.SynReceived);
  });

  it("SYN-RECEIVED retransmitted SYN → SYN-ACK again", () => {
    const h = TcpHarness.passive({}, { iss: 1000 });
    const first = h.lastOut!;
    h.advance(300);
    h.peerSend({ flags: TCP_SYN, seq: 1000, mss: 1460, windowScale: 7, sackPermitted: true });
    expect(h.out).toHaveLength(2);
    expectSegment(h.lastOut, Flags(TCP_SYN | TCP_ACK), Seq(first.seq), Ack(1001), Mss(1460));
    expect(h.state).toBe(TcpState.SynReceived);
  });

  it("SYN-RECEIVED in-window RST → closed, reset", () => {
    const h = TcpHarness.passive();
    h.peerSend({ flags: TCP_RST, seq: 1001 });
    expect(h.closeReasons).toEqual(["reset"]);
    expect(h.state).toBe(TcpState.Closed);
  });

  it("SYN-RECEIVED timeout → SYN-ACK retransmitted with doubling backoff until give-up", () => {
    const h = TcpHarness.passive({ maxSynRetransmits: 3 });
    const sentAt = [h.now];
    for (let i = 0; i < 10 && !h.conn.isClosed; i++) {
      const before = h.out.length;
      h.fireNextTimer();
      if (h.out.length > before) {
        expectSegment(h.lastOut, Flags(TCP_SYN | TCP_ACK), Seq(h.iss), Ack(1001));
        sentAt.push(h.now);
      }
    }
    // RFC 6298: initial RTO 1 s, doubled after each expiry.
    expect(sentAt).toEqual([0, 1000, 3000, 7000]);
    expect(h.now).toBe(15_000);
    expect(h.closeReasons).toEqual(["timeout"]);
    expect(h.conn.pollAt()).toBeUndefined();
  });

  it("SYN-RECEIVED timeout with the default limit → gives up after 6 retransmissions (123 s)", () => {
    const h = TcpHarness.passive();
    // SYN-ACK at 0, then 1, 3, 7, 15, 31, 63 s; the RTO caps at 60 s, so the 7th expiry
    // at 123 s gives up.
    h.advance(122_999);
    expect(h.out).toHaveLength(7);
    expect(h.closeReasons).toEqual([]);
    h.advance(1);
    expect(h.closeReasons).toEqual(["timeout"]);
  });
});

describe("option negotiation", () => {
  it("SYN with a smaller MSS → we send segments of the peer's MSS", () => {
    const h = TcpHarness.established({ mss: 1460 }, { mss: 536 });
    h.conn.send(Buffer.alloc(2000, 1));
    expect(h.out.map((s) => s.payload.length)).toEqual([536, 536, 536, 392]);
  });

  it("SYN with a larger MSS → our own MSS bounds segments", () => {
    const h = TcpHarness.established({ mss: 1000 }, { mss: 1460 });
    h.conn.send(Buffer.alloc(2500, 1));
    expect(h.out.map((s) => s.payload.length)).toEqual([1000, 1000, 500]);
  });

  it("SYN without MSS option → 536 (RFC 9293 3.7.1)", () => {
    const h = TcpHarness.established({ mss: 1460 }, { mss: undefined });
    h.conn.send(Buffer.alloc(600, 1));
    expect(h.out.map((s) => s.payload.length)).toEqual([536, 64]);
  });

  it("SYN without window scale → SYN-ACK has no wscale and windows are unscaled", () => {
    const h = TcpHarness.passive({ receiveBuffer: 1 << 20 }, { windowScale: undefined });
    expectSegment(h.lastOut, WindowScale(undefined), Window(65535));
    h.peerSend({ flags: TCP_ACK, ack: h.iss + 1, payload: "x" });
    // An unscaled 16-bit window saturates at 65535 though the buffer is 1 MiB.
    expectSegment(h.lastOut, Flags(TCP_ACK), Window(65535));
    // And the peer's window is taken as bytes: 100 bytes allow one 100-byte segment.
    h.clearOut();
    h.peerSend({ flags: TCP_ACK, window: 100 });
    h.conn.send(Buffer.alloc(300, 2));
    expect(h.out.map((s) => s.payload.length)).toEqual([100]);
  });

  it("SYN with window scale → SYN-ACK echoes wscale 7, later windows are scaled both ways", () => {
    const h = TcpHarness.passive({ receiveBuffer: 1 << 20 }, { windowScale: 2 });
    expectSegment(h.lastOut, WindowScale(7), Window(65535)); // a SYN's window is never scaled
    h.peerSend({ flags: TCP_ACK, ack: h.iss + 1, window: 1000 }); // 1000 << 2 = 4000 bytes
    h.peerSend({ payload: "x", window: 1000 });
    expectSegment(h.lastOut, Flags(TCP_ACK), Window((1 << 20) >>> 7));
    h.clearOut();
    h.conn.send(Buffer.alloc(5000, 3));
    // 4000 bytes of window: two full segments; the 1080-byte remainder waits (sender SWS avoidance).
    expect(h.out.map((s) => s.payload.length)).toEqual([1460, 1460]);
  });

  it("SYN with SACK-permitted → echoed; without → not", () => {
    expectSegment(TcpHarness.passive({}, { sackPermitted: true }).lastOut, SackPermitted(true));
    expectSegment(TcpHarness.passive({}, { sackPermitted: false }).lastOut, SackPermitted(false));
  });
});

describe("active open", () => {
  it("CLOSED connect → SYN-SENT, SYN offers MSS, wscale and SACK", () => {
    const h = TcpHarness.active({ mss: 1400 });
    expect(h.state).toBe(TcpState.SynSent);
    expectSegment(
      h.lastOut,
      Flags(TCP_SYN, true),
      Ack(0),
      Mss(1400),
      WindowScale(7),
      SackPermitted(true),
      Len(0),
    );
  });

  it("SYN-SENT SYN-ACK → ESTABLISHED, ACK sent", () => {
    const h = TcpHarness.active();
    const iss = h.iss;
    h.peerIss = 7000;
    h.peerNxt = 7000;
    h.peerSend({ flags: TCP_SYN | TCP_ACK, ack: iss + 1, mss: 1460, windowScale: 7, sackPermitted: true });
    expect(h.state).toBe(TcpState.Established);
    expect(h.events.established).toBe(1);
    expectSegment(h.lastOut, Flags(TCP_ACK, true), Seq(iss + 1), Ack(7001), Len(0));
  });

  it("SYN-SENT data queued before the SYN-ACK → sent once established", () => {
    const h = TcpHarness.active();
    expect(h.conn.send(Buffer.from("early"))).toBe(true);
    expect(h.out).toHaveLength(1);
    h.peerIss = 7000;
    h.peerNxt = 7000;
    h.peerSend({ flags: TCP_SYN | TCP_ACK, ack: h.iss + 1, mss: 1460 });
    const data = h.out.filter((s) => s.payload.length > 0);
    expect(data).toHaveLength(1);
    expectSegment(data[0], Seq(h.iss + 1), Ack(7001));
    expect(data[0]!.payload.toString()).toBe("early");
  });

  it("SYN-SENT RST|ACK acknowledging our SYN → refused", () => {
    const h = TcpHarness.active();
    h.peerSend({ flags: TCP_RST | TCP_ACK, seq: 0, ack: h.iss + 1 });
    expect(h.closeReasons).toEqual(["refused"]);
    expect(h.state).toBe(TcpState.Closed);
  });

  it("SYN-SENT RST|ACK with a wrong ack → ignored", () => {
    const h = TcpHarness.active();
    h.peerSend({ flags: TCP_RST | TCP_ACK, seq: 0, ack: h.iss + 2 });
    expect(h.closeReasons).toEqual([]);
    expect(h.state).toBe(TcpState.SynSent);
    expect(h.out).toHaveLength(1); // no RST answers an RST
  });

  it("SYN-SENT SYN-ACK with a wrong ack → RST at that ack", () => {
    const h = TcpHarness.active();
    h.peerSend({ flags: TCP_SYN | TCP_ACK, seq: 7000, ack: h.iss + 9 });
    expectSegment(h.lastOut, Flags(TCP_RST, true), Seq(h.iss + 9));
    expect(h.state).toBe(TcpState.SynSent);
  });

  it("SYN-SENT timeout → SYN retransmitted at 1, 3, 7 s", () => {
    const h = TcpHarness.active({ maxSynRetransmits: 2 });
    h.advance(999);
    expect(h.out).toHaveLength(1);
    h.advance(1);
    expect(h.out).toHaveLength(2);
    expectSegment(h.lastOut, Flags(TCP_SYN, true), Seq(h.iss));
    h.advance(2000);
    expect(h.out).toHaveLength(3);
    h.advance(3999);
    expect(h.closeReasons).toEqual([]);
    h.advance(1);
    expect(h.closeReasons).toEqual(["timeout"]);
  });

  it("SYN-SENT SYN-ACK from a peer without window scale → our ACK's window unscaled", () => {
    const h = TcpHarness.active({ receiveBuffer: 32768 });
    h.peerIss = 100;
    h.peerNxt = 100;
    h.peerSend({ flags: TCP_SYN | TCP_ACK, ack: h.iss + 1, mss: 1460 });
    expectSegment(h.lastOut, Flags(TCP_ACK), Window(32768));
  });

  // Connection.sendSyn records rcvAdvertisedEdge = rcvNxt + window while rcvNxt is still 0 in
  // SYN-SENT; when the SYN-ACK arrives rcvNxt jumps to irs+1 but the edge is not reset, so the
  // "never shrink the promised window" rule in emit() sees a garbage promise and, for about half
  // of all peer ISNs, advertises far more than the receive buffer.
  it("SYN-SENT SYN-ACK with a high peer ISN → advertised window stays within the receive buffer", () => {
    const h = TcpHarness.active({ receiveBuffer: 16384 });
    h.peerIss = 0x90000000;
    h.peerNxt = 0x90000000;
    h.peerSend({ flags: TCP_SYN | TCP_ACK, ack: h.iss + 1, mss: 1460, windowScale: 7 });
    const ack = h.lastOut!;
    expect(ack.window << 7).toBeLessThanOrEqual(16384);
  });
});
