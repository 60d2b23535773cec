/**
 * Connections the stack closed first wait out TIME-WAIT as small records, frame by frame on a
 * manual clock: the flow itself is gone, the 4-tuple still answers old duplicates for 2MSL, a new
 * SYN may take it over, and the records are bounded.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { StackOptions } from "../../src/stack.js";
import { type FrameHarness, frameHarness, type ScriptedGuest } from "../../src/testing/frame-harness.js";
import { TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN } from "../../src/wire/tcp.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };
const B = { mac: "02:00:00:00:00:0b", ip: "192.168.65.4" };
const WAIT_MS = 30_000;

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A guest-served-by-policy port that says "bye" and closes first, so the stack's side waits. */
function harness(tcp: StackOptions["tcp"] = {}): FrameHarness {
  return frameHarness({
    tcp: { timeWaitMs: WAIT_MS, ...tcp },
    policy: {
      tcp: (f) => (f.dstPort === 7 ? { action: "handle", handler: (s) => s.end("bye") } : undefined),
    },
  });
}

/** Opens a connection from `srcPort`, takes the stack's "bye" and FIN, and closes the guest's side. */
async function closedByStack(harness: FrameHarness, guest: ScriptedGuest, srcPort: number, ip = A.ip) {
  const dst = harness.config.gateway;
  guest.tcp({ dst, srcPort, dstPort: 7, flags: TCP_SYN, seq: 1000, window: 65535 });
  await harness.settle();
  const synAck = harness.take(ip).find((f) => f.tcp)!.tcp!;
  guest.tcp({ dst, srcPort, dstPort: 7, flags: TCP_ACK, seq: 1001, ack: synAck.seq + 1, window: 65535 });
  await harness.settle();
  const sent = harness.take(ip).flatMap((f) => (f.tcp ? [f.tcp] : []));
  const fin = sent.find((t) => t.flags & TCP_FIN)!;
  expect(Buffer.concat(sent.map((t) => t.payload)).toString()).toBe("bye");
  const stackNext = fin.seq + fin.payload.length + 1;
  // The guest acknowledges everything and sends its own FIN: the stack answers and waits.
  guest.tcp({ dst, srcPort, dstPort: 7, flags: TCP_FIN | TCP_ACK, seq: 1001, ack: stackNext, window: 65535 });
  await harness.settle();
  const lastAck = harness.take(ip).find((f) => f.tcp)!.tcp!;
  expect(lastAck.flags).toBe(TCP_ACK);
  expect(lastAck.ack).toBe(1002);
  return { stackNext, lastAck, dst };
}

describe("TIME-WAIT records", () => {
  it("keep the 4-tuple answering after the flow is gone, then end after 2MSL", async () => {
    h = harness();
    const guest = h.guest(A.mac, A.ip);
    const { stackNext, lastAck, dst } = await closedByStack(h, guest, 40000);
    const tcp = () => h!.stack.counters().tcp;
    expect(tcp()).toMatchObject({ open: 0, timeWait: 1, closed: 1 });
    expect(h.stack.flows()).toEqual([
      expect.objectContaining({ guest: `${A.ip}:40000`, state: "TIME-WAIT", bytesToGuest: 3 }),
    ]);

    // The guest's FIN again (our ACK was lost): the same ACK again, and the wait restarts.
    await h.advance(WAIT_MS - 1000);
    guest.tcp({ dst, srcPort: 40000, dstPort: 7, flags: TCP_FIN | TCP_ACK, seq: 1001, ack: stackNext });
    await h.settle();
    const again = h.take(A.ip).find((f) => f.tcp)!.tcp!;
    expect(again).toMatchObject({ flags: TCP_ACK, seq: lastAck.seq, ack: 1002, window: lastAck.window });
    await h.advance(WAIT_MS - 1);
    expect(tcp().timeWait).toBe(1);
    await h.advance(1);
    expect(tcp().timeWait).toBe(0);
    expect(h.stack.flows()).toEqual([]);

    // Gone: a segment for the 4-tuple is now for no connection at all.
    guest.tcp({ dst, srcPort: 40000, dstPort: 7, flags: TCP_FIN | TCP_ACK, seq: 1001, ack: stackNext });
    await h.settle();
    expect(h.take(A.ip).find((f) => f.tcp)!.tcp!.flags & TCP_RST).toBeTruthy();
  });

  it("end at an RST at the exact sequence number; other RSTs get a challenge ACK or nothing", async () => {
    h = harness();
    const guest = h.guest(A.mac, A.ip);
    const { stackNext, dst } = await closedByStack(h, guest, 40001);
    const rst = (seq: number) =>
      guest.tcp({ dst, srcPort: 40001, dstPort: 7, flags: TCP_RST | TCP_ACK, seq, ack: stackNext });
    rst(1002 + 100); // in the window
    await h.settle();
    expect(h.take(A.ip).find((f) => f.tcp)!.tcp!).toMatchObject({ flags: TCP_ACK, ack: 1002 });
    rst(1002 + 10_000_000); // far outside
    await h.settle();
    expect(h.take(A.ip)).toEqual([]);
    expect(h.stack.counters().tcp.timeWait).toBe(1);
    rst(1002);
    await h.settle();
    expect(h.take(A.ip)).toEqual([]);
    expect(h.stack.counters().tcp.timeWait).toBe(0);
  });

  it("give way to a new SYN on the same 4-tuple, which opens a new connection", async () => {
    h = harness();
    const guest = h.guest(A.mac, A.ip);
    const { dst } = await closedByStack(h, guest, 40002);
    guest.tcp({ dst, srcPort: 40002, dstPort: 7, flags: TCP_SYN, seq: 900_000, window: 65535 });
    await h.settle();
    const synAck = h.take(A.ip).find((f) => f.tcp)!.tcp!;
    expect(synAck.flags).toBe(TCP_SYN | TCP_ACK);
    expect(synAck.ack).toBe(900_001);
    expect(h.stack.counters().tcp).toMatchObject({ open: 1, timeWait: 0, timeWaitReclaimed: 1 });
  });

  it("are bounded by maxTimeWait: past it the oldest goes early, counted", async () => {
    h = harness({ maxTimeWait: 2 });
    const guest = h.guest(A.mac, A.ip);
    for (const port of [41000, 41001, 41002]) await closedByStack(h, guest, port);
    expect(h.stack.counters().tcp).toMatchObject({ open: 0, timeWait: 2, timeWaitReclaimed: 1 });
    expect(h.stack.flows().map((f) => f.guest)).toEqual([`${A.ip}:41001`, `${A.ip}:41002`]);
  });

  it("are taken back from the guest holding the most, so one guest's churn keeps others' waits", async () => {
    h = harness({ maxTimeWait: 4 });
    const a = h.guest(A.mac, A.ip);
    const b = h.guest(B.mac, B.ip);
    for (const port of [42000, 42001]) await closedByStack(h, a, port);
    for (let port = 43000; port < 43010; port++) await closedByStack(h, b, port, B.ip);
    expect(h.stack.counters().tcp).toMatchObject({ timeWait: 4, timeWaitReclaimed: 8 });
    expect(h.stack.flows().map((f) => f.guest)).toEqual([
      `${A.ip}:42000`,
      `${A.ip}:42001`,
      `${B.ip}:43008`,
      `${B.ip}:43009`,
    ]);
  });
});
