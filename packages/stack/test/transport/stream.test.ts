/**
 * The stream transport's own edges, on real sockets: a link that closes itself from inside a
 * frame callback, a socket that was already gone when the link started, frames lent from one
 * landing buffer to a receiver that copies them, and frames sent in parts.
 */
import * as net from "node:net";
import type { FrameMeta } from "@desktopd/core";
import { describe, expect, it } from "vitest";
import { streamTransport } from "../../src/transport/stream.js";
import { arpRequest, icmpEchoRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { framed, until } from "../fixtures/streams.js";

/** A connected pair of TCP sockets on loopback. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, "127.0.0.1");
  await new Promise<void>((r) => client.once("connect", r));
  const ours = await accepted;
  server.close();
  return [ours, client];
}

describe("streamTransport", { timeout: 10_000 }, () => {
  it("delivers nothing after a receiver closes the link, even from the same chunk", async () => {
    const [ours, peer] = await socketPair();
    const link = streamTransport(ours, ours, { name: "t" });
    const frames: Buffer[] = [];
    let closes = 0;
    link.start({
      onFrame: (f) => {
        frames.push(f);
        void link.close();
      },
      onClose: () => closes++,
    });
    peer.write(framed(bytes(arpRequest), bytes(icmpEchoRequest)));
    await until(() => closes === 1, "the close");
    expect(frames).toHaveLength(1);
    expect(link.stats.framesIn).toBe(1);
    peer.destroy();
  });

  it("reports the close of a socket that was gone before start", async () => {
    const [ours, peer] = await socketPair();
    peer.destroy();
    await new Promise((r) => ours.once("close", r));
    const link = streamTransport(ours, ours, { name: "t" });
    let closes = 0;
    link.start({ onFrame: () => {}, onClose: () => closes++ });
    expect(closes).toBe(1);
    await link.close();
    expect(closes).toBe(1);
  });

  /** Frames of every size up to `max`, each a pattern of its own, as the peer will write them. */
  function manyFrames(count: number, max: number): Buffer[] {
    return Array.from({ length: count }, (_, i) => {
      const f = Buffer.alloc(14 + ((i * 7919) % (max - 14)));
      for (let j = 0; j < f.length; j++) f[j] = (i * 31 + j) & 0xff;
      return f;
    });
  }

  /** Writes `frames` framed, in chunks cut at odd places so that frames span reads. */
  async function writeCut(peer: net.Socket, frames: Buffer[]): Promise<void> {
    const stream = framed(...frames);
    for (let at = 0, i = 0; at < stream.length; i++) {
      const n = 1 + ((i * 104_729) % 90_000);
      const ok = peer.write(stream.subarray(at, at + n));
      at += n;
      if (!ok) await new Promise((r) => peer.once("drain", r));
    }
  }

  it("lends frames from one landing buffer to a receiver that copies them, whole frames and split ones", async () => {
    const [ours, peer] = await socketPair();
    const link = streamTransport(ours, ours, { name: "t", ownsSocket: true });
    const copies: Buffer[] = [];
    const lent: Buffer[] = [];
    const metas: (FrameMeta | undefined)[] = [];
    link.start({
      acceptsLent: true,
      onFrame: (f, meta) => {
        copies.push(Buffer.from(f));
        lent.push(f);
        metas.push(meta);
      },
    });
    const frames = manyFrames(300, 65_000);
    await writeCut(peer, frames);
    await until(() => copies.length === frames.length, "every frame");
    for (const [i, f] of frames.entries()) expect(copies[i]!.equals(f), `frame ${i}`).toBe(true);
    expect(metas.every((m) => m?.lent === true)).toBe(true);
    // Lent, not given: what the receiver did not copy was overwritten by later reads.
    expect(lent.filter((f, i) => !f.equals(frames[i]!)).length).toBeGreaterThan(0);
    peer.destroy();
    await link.close();
  });

  it("gives frames of their own to a receiver that keeps them, from the same landing buffer", async () => {
    const [ours, peer] = await socketPair();
    const link = streamTransport(ours, ours, { name: "t", ownsSocket: true });
    const kept: Buffer[] = [];
    const metas: (FrameMeta | undefined)[] = [];
    link.start({
      onFrame: (f, meta) => {
        kept.push(f);
        metas.push(meta);
      },
    });
    const frames = manyFrames(300, 65_000);
    await writeCut(peer, frames);
    await until(() => kept.length === frames.length, "every frame");
    for (const [i, f] of frames.entries()) expect(kept[i]!.equals(f), `frame ${i}`).toBe(true);
    expect(metas.every((m) => m?.lent !== true)).toBe(true);
    peer.destroy();
    await link.close();
  });

  it("sends a frame given in parts as one length-prefixed frame, the parts free again on return", async () => {
    const [ours, peer] = await socketPair();
    // Room for all of them at once: this is about the bytes, not the queue's bound.
    const link = streamTransport(ours, ours, { name: "t", ownsSocket: true, maxQueuedBytes: 64 << 20 });
    link.start({ onFrame: () => {} });
    const received: Buffer[] = [];
    peer.on("data", (d: Buffer) => received.push(d));
    const expected: Buffer[] = [];
    const scratch = Buffer.alloc(70_000);
    for (let i = 0; i < 200; i++) {
      const frame = manyFrames(i + 1, 60_000)[i]!;
      frame.copy(scratch);
      // Cut at odd places into views of one scratch buffer that is overwritten after each call.
      const a = 1 + (i % 13);
      const b = a + Math.floor((frame.length - a) / 2);
      link.sendv!([scratch.subarray(0, a), scratch.subarray(a, b), scratch.subarray(b, frame.length)]);
      scratch.fill(0xee);
      expected.push(frame);
    }
    const want = framed(...expected);
    await until(() => Buffer.concat(received).length >= want.length, "every frame at the peer");
    expect(Buffer.concat(received).equals(want)).toBe(true);
    expect(link.stats.framesOut).toBe(200);
    peer.destroy();
    await link.close();
  });
});
