/** The koffi unix datagram socket under peers that stop reading. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { UnixDgramSocket } from "../../src/transport/unix-dgram-socket.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("UnixDgramSocket", () => {
  it("refuses a maxBlockingSends that is not a whole number ≥ 1", async () => {
    for (const maxBlockingSends of [0, 1.5, Number.NaN]) {
      await expect(UnixDgramSocket.bind("/tmp/never-bound.sock", { maxBlockingSends })).rejects.toThrow(
        "maxBlockingSends must be a whole number",
      );
    }
  });

  it("keeps blocking sends to peers that do not read within maxBlockingSends worker threads", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dtd-dgsock-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    // A small send buffer: a peer that does not read blocks our sends after a few frames,
    // whatever net.unix.max_dgram_qlen this machine has.
    const ours = await UnixDgramSocket.bind(join(dir, "ours"), {
      maxBlockingSends: 1,
      sendBufferBytes: 4096,
    });
    cleanups.push(() => ours.close());
    // Bound, never reading.
    const stuck = await Promise.all(["a", "b", "c"].map((n) => UnixDgramSocket.bind(join(dir, n))));
    for (const s of stuck) cleanups.push(() => s.close());
    const frames = Array.from({ length: 64 }, () => Buffer.alloc(1500));
    const senders = stuck.map((s) => ours.batchSender(s.path));
    let most = 0;
    const watch = setInterval(() => {
      most = Math.max(most, ours.blockingSendsNow);
    }, 5);
    try {
      const sending = senders.map((b) => b.send(frames));
      // The first takes the one slot at once; the others wait for it.
      expect(ours.blockingSendsNow).toBe(1);
      const sent = await Promise.all(sending);
      // Frames queued at a peer stay charged to our send buffer: the first peer took what fits,
      // then each send gave up at SO_SNDTIMEO, one at a time.
      expect(sent[0]).toBeGreaterThan(0);
      for (const n of sent) expect(n).toBeLessThan(frames.length);
      expect(most).toBe(1);
      expect(ours.blockingSendsNow).toBe(0);
    } finally {
      clearInterval(watch);
      for (const b of senders) b.free();
    }
  }, 20_000);

  it("wakes senders waiting for a worker slot when it closes", async () => {
    const dir = await mkdtemp(join(tmpdir(), "dtd-dgsock-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const ours = await UnixDgramSocket.bind(join(dir, "ours"), {
      maxBlockingSends: 1,
      sendBufferBytes: 4096,
    });
    const stuck = await Promise.all(["a", "b"].map((n) => UnixDgramSocket.bind(join(dir, n))));
    for (const s of stuck) cleanups.push(() => s.close());
    const frames = Array.from({ length: 64 }, () => Buffer.alloc(1500));
    const [first, second] = stuck.map((s) => ours.batchSender(s.path));
    const running = first!.send(frames);
    const waiting = second!.send(frames);
    expect(ours.blockingSendsNow).toBe(1);
    await ours.close();
    // The waiting send never reaches a worker; the running one ends (at the latest at its timeout).
    expect(await waiting).toBe(0);
    expect(await running).toBeLessThan(frames.length);
    first!.free();
    second!.free();
  }, 20_000);
});
