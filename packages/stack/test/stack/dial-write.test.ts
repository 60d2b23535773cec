/**
 * Writes to a stream the stack dialled into a guest, frame by frame on a manual clock: once a
 * write's callback ran, the writer's buffer is its own again, and what the guest gets (the first
 * time and on a retransmission) is what was written.
 */
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { type FrameHarness, frameHarness } from "../../src/testing/frame-harness.js";
import { TCP_ACK, TCP_SYN } from "../../src/wire/tcp.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Dials port 22 of guest A, which accepts; the stream and the guest's next sequence number. */
async function dialled(harness: FrameHarness): Promise<{ stream: Duplex; guestSeq: number }> {
  const g = harness.guest(A.mac, A.ip);
  g.ping(harness.config.gateway); // teaches the stack the guest's MAC
  await harness.settle();
  const dial = harness.stack.connect(A.ip, 22);
  await harness.advance(10);
  const syn = harness.take().find((f) => f.tcp?.flags === TCP_SYN)!.tcp!;
  g.tcp({
    dst: harness.config.hostAddress,
    srcPort: 22,
    dstPort: syn.srcPort,
    flags: TCP_SYN | TCP_ACK,
    seq: 5000,
    ack: syn.seq + 1,
  });
  const stream = await dial;
  await harness.settle();
  harness.take();
  return { stream, guestSeq: 5001 };
}

describe("a dialled stream's writes", () => {
  it("are copied: a buffer reused after its callback changes neither the segment nor its retransmission", async () => {
    h = frameHarness();
    const { stream } = await dialled(h);
    const data = Buffer.from("the bytes the guest must get");
    await new Promise<void>((resolve, reject) => stream.write(data, (e) => (e ? reject(e) : resolve())));
    data.fill(0x58);
    await h.settle();
    const first = h.take().find((f) => (f.tcp?.payload.length ?? 0) > 0)?.tcp;
    expect(first?.payload.toString()).toBe("the bytes the guest must get");
    // The guest acknowledges nothing: the retransmission timer sends the same bytes again.
    await h.advance(1_500);
    const again = h.take().find((f) => (f.tcp?.payload.length ?? 0) > 0)?.tcp;
    expect(again?.seq).toBe(first?.seq);
    expect(again?.payload.toString()).toBe("the bytes the guest must get");
  });
});
