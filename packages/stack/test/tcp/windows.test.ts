/** Window edge cases the property tests found (test/fuzz/tcp-connection.fuzz.test.ts). */
import { describe, expect, it } from "vitest";
import { TcpHarness } from "../../src/testing/tcp-harness.js";
import { TCP_ACK } from "../../src/wire/tcp.js";

describe("windows", () => {
  it("SYN-SENT SYN-ACK offering window scaling → its own window is taken unscaled (RFC 7323 2.2)", () => {
    const h = TcpHarness.establishedActive({ mss: 1460 }, { window: 1, windowScale: 1 });
    h.conn.send(Buffer.alloc(2));
    expect(h.out.filter((s) => s.payload.length > 0).map((s) => s.payload.length)).toEqual([1]);
  });

  it("ESTABLISHED three duplicate ACKs → the fast retransmission carries only data sent before", () => {
    const h = TcpHarness.established({ mss: 1460 }, { windowScale: undefined });
    h.peerSend({ flags: TCP_ACK, window: 1 });
    h.clearOut();
    h.conn.send(Buffer.alloc(2));
    expect(h.takeOut().map((s) => s.payload.length)).toEqual([1]);
    for (let i = 0; i < 3; i++) h.peerSend({ flags: TCP_ACK, ack: h.iss + 1, window: 1 });
    const resent = h.takeOut().filter((s) => s.payload.length > 0);
    expect(resent.map((s) => [s.seq, s.payload.length])).toEqual([[h.iss + 1, 1]]);
  });

  it("ESTABLISHED data the application does not read, ACK after ACK → the right edge never moves back", () => {
    const h = TcpHarness.established({ mss: 1460, receiveBuffer: 100_000 }, { windowScale: 7 });
    let edge = 0;
    for (let i = 0; i < 20; i++) {
      h.peerSend({ payload: Buffer.alloc(97) });
      // The application holds everything it was given.
      h.backlog += 97;
      h.conn.flush();
      const ack = h.lastOut!;
      const right = ack.ack + ack.window * 128;
      expect(right).toBeGreaterThanOrEqual(edge);
      edge = right;
    }
  });
});
