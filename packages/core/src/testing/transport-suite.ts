/**
 * The compliance suite every `FrameTransport` runs (as js-libp2p's interface tests): frames both
 * ways byte for byte and in order, buffers owned by the receiver, counters, a single start, and
 * nothing delivered after close. Call it inside a test file; it registers vitest tests.
 */
import { describe, expect, it } from "vitest";
import type { FrameTransport } from "../transport.js";

/** The other end of the link under test, as the suite drives it. */
export interface TransportPeer {
  /** Sends one frame to the transport under test. */
  send(frame: Buffer): void;
  /** Frames the transport under test sent, in order, as they arrive. */
  readonly received: Buffer[];
  close(): Promise<void>;
}

export interface TransportUnderTest {
  transport: FrameTransport;
  peer: TransportPeer;
}

/** A frame of `length` bytes whose content says which frame it is. */
function frame(index: number, length: number): Buffer {
  const f = Buffer.alloc(length);
  for (let i = 0; i < length; i++) f[i] = (index * 31 + i) & 0xff;
  return f;
}

async function until(what: string, done: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export function frameTransportCompliance(name: string, open: () => Promise<TransportUnderTest>): void {
  describe(`FrameTransport compliance: ${name}`, () => {
    const sizes = [60, 64, 1514, 200, 9000, 61];

    it("carries frames both ways, byte for byte and in order, and counts them", async () => {
      const { transport, peer } = await open();
      try {
        const got: Buffer[] = [];
        transport.start({ onFrame: (f) => got.push(f) });
        for (const [i, n] of sizes.entries()) peer.send(frame(i, n));
        await until("frames from the peer", () => got.length >= sizes.length);
        expect(got.map((f) => f.toString("hex"))).toEqual(sizes.map((n, i) => frame(i, n).toString("hex")));
        for (const [i, n] of sizes.entries()) transport.send(frame(100 + i, n));
        await until("frames at the peer", () => peer.received.length >= sizes.length);
        expect(peer.received.map((f) => f.toString("hex"))).toEqual(
          sizes.map((n, i) => frame(100 + i, n).toString("hex")),
        );
        const total = sizes.reduce((a, b) => a + b, 0);
        expect(transport.stats).toMatchObject({
          framesIn: sizes.length,
          framesOut: sizes.length,
          bytesIn: total,
          bytesOut: total,
        });
      } finally {
        await transport.close();
        await peer.close();
      }
    });

    it("hands each received frame over for good: later frames never reuse its bytes", async () => {
      const { transport, peer } = await open();
      try {
        const got: Buffer[] = [];
        transport.start({ onFrame: (f) => got.push(f) });
        for (let i = 0; i < 50; i++) peer.send(frame(i, 100));
        await until("50 frames", () => got.length >= 50);
        for (const [i, f] of got.entries()) expect(f.equals(frame(i, 100)), `frame ${i}`).toBe(true);
      } finally {
        await transport.close();
        await peer.close();
      }
    });

    it("starts once", async () => {
      const { transport, peer } = await open();
      try {
        transport.start({ onFrame: () => {} });
        expect(() => transport.start({ onFrame: () => {} })).toThrow();
      } finally {
        await transport.close();
        await peer.close();
      }
    });

    it("delivers nothing once close() settled, and closing twice is harmless", async () => {
      const { transport, peer } = await open();
      let after = 0;
      let closed = false;
      transport.start({
        onFrame: () => {
          if (closed) after++;
        },
      });
      await transport.close();
      closed = true;
      peer.send(frame(1, 100));
      transport.send(frame(2, 100));
      await new Promise((r) => setTimeout(r, 50));
      await transport.close();
      await peer.close();
      expect(after).toBe(0);
    });
  });
}
