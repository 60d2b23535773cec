/**
 * qemu's stream framing, decoded: every frame preceded by its 32-bit big-endian length. Inputs are
 * frames captured from real Linux traffic, framed the way qemu writes them.
 */
import { describe, expect, it } from "vitest";
import {
  LENGTH_PREFIX_BYTES,
  LengthPrefixDecoder,
  type LengthPrefixLimits,
  lengthPrefix,
} from "../../src/transport/length-prefix.js";
import { arpReply, arpRequest, icmpEchoRequest, udpRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { framed } from "../fixtures/streams.js";

const LIMITS: LengthPrefixLimits = { minFrame: 14, maxFrame: 1518, maxSkip: 256 * 1024 };
const captured = [arpRequest, icmpEchoRequest, udpRequest, arpReply].map(bytes);

/**
 * A copy in memory of its own (Buffer.alloc never uses the shared pool that small Buffer.concat
 * and allocUnsafe results live in), so `.buffer` identity tells a view from a copy.
 */
function own(bytes: Buffer): Buffer {
  const b = Buffer.alloc(bytes.length);
  bytes.copy(b);
  return b;
}

/** A decoder that records what it hands out. */
function decoder(limits: LengthPrefixLimits = LIMITS) {
  const frames: Buffer[] = [];
  const drops: string[] = [];
  const d = new LengthPrefixDecoder(limits, {
    frame: (f) => frames.push(f),
    drop: (reason) => drops.push(reason),
  });
  return { d, frames, drops };
}

describe("lengthPrefix", () => {
  it("is the length as 4 big-endian bytes", () => {
    expect(LENGTH_PREFIX_BYTES).toBe(4);
    expect(lengthPrefix(42).toString("hex")).toBe("0000002a");
    expect(lengthPrefix(0x01020304).toString("hex")).toBe("01020304");
    expect(lengthPrefix(65_534).toString("hex")).toBe("0000fffe");
  });
});

describe("LengthPrefixDecoder", () => {
  it("hands out whole frames of one chunk as views of that chunk, no copy", () => {
    const { d, frames, drops } = decoder();
    const chunk = own(framed(...captured));
    expect(d.push(chunk)).toBeUndefined();
    expect(frames).toHaveLength(captured.length);
    let offset = 0;
    for (const [i, f] of frames.entries()) {
      expect(f.equals(captured[i]!)).toBe(true);
      expect(f.buffer).toBe(chunk.buffer);
      offset += LENGTH_PREFIX_BYTES;
      expect(f.byteOffset).toBe(chunk.byteOffset + offset);
      offset += f.length;
    }
    expect(drops).toEqual([]);
    expect(d.midFrame).toBe(false);
    // Views: what is written into the chunk shows through.
    chunk.fill(0);
    for (const f of frames) expect(f.every((b) => b === 0)).toBe(true);
  });

  it("decodes the same frames fed one byte at a time", () => {
    const { d, frames, drops } = decoder();
    const stream = framed(...captured);
    for (let i = 0; i < stream.length; i++) {
      expect(d.push(stream.subarray(i, i + 1))).toBeUndefined();
    }
    expect(frames.map((f) => f.toString("hex"))).toEqual(captured.map((f) => f.toString("hex")));
    expect(drops).toEqual([]);
    expect(d.midFrame).toBe(false);
  });

  it("decodes every split of a stream into two chunks", () => {
    const stream = framed(...captured);
    for (let cut = 0; cut <= stream.length; cut++) {
      const { d, frames } = decoder();
      // Copies, so that a frame assembled across chunks cannot pass by pointing at the original.
      d.push(Buffer.from(stream.subarray(0, cut)));
      d.push(Buffer.from(stream.subarray(cut)));
      expect(frames.map((f) => f.toString("hex"))).toEqual(captured.map((f) => f.toString("hex")));
    }
  });

  it("joins a header split across chunks", () => {
    const { d, frames } = decoder();
    const frame = bytes(icmpEchoRequest);
    const stream = framed(frame);
    d.push(stream.subarray(0, 1));
    expect(d.midFrame).toBe(true);
    d.push(stream.subarray(1, 3));
    expect(d.midFrame).toBe(true);
    expect(frames).toHaveLength(0);
    // The last header byte and the whole frame in one chunk: handed out as a view of it.
    const rest = own(stream.subarray(3));
    d.push(rest);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.equals(frame)).toBe(true);
    expect(frames[0]!.buffer).toBe(rest.buffer);
    expect(d.midFrame).toBe(false);
  });

  it("assembles a frame split across chunks into a buffer of its own", () => {
    const { d, frames } = decoder();
    const frame = bytes(udpRequest);
    const first = own(Buffer.concat([lengthPrefix(frame.length), frame.subarray(0, 10)]));
    const second = own(frame.subarray(10, 30));
    const third = own(Buffer.concat([frame.subarray(30), framed(bytes(arpRequest))]));
    d.push(first);
    expect(d.midFrame).toBe(true);
    d.push(second);
    expect(frames).toHaveLength(0);
    expect(d.midFrame).toBe(true);
    d.push(third);
    expect(frames).toHaveLength(2);
    expect(frames[0]!.equals(frame)).toBe(true);
    for (const chunk of [first, second, third]) expect(frames[0]!.buffer).not.toBe(chunk.buffer);
    // The frame after it, whole in the last chunk, is a view again.
    expect(frames[1]!.equals(bytes(arpRequest))).toBe(true);
    expect(frames[1]!.buffer).toBe(third.buffer);
    // Reusing the chunks afterwards does not touch the assembled frame.
    first.fill(0);
    second.fill(0);
    third.fill(0);
    expect(frames[0]!.equals(frame)).toBe(true);
  });

  it("drops zero-length and short frames as truncated and stays in sync", () => {
    const { d, frames, drops } = decoder();
    const arp = bytes(arpRequest);
    const stream = Buffer.concat([
      lengthPrefix(0),
      framed(arp),
      lengthPrefix(13),
      Buffer.alloc(13, 0xee),
      lengthPrefix(1),
      Buffer.from([0x45]),
      framed(bytes(udpRequest)),
    ]);
    expect(d.push(stream)).toBeUndefined();
    expect(drops).toEqual(["truncated", "truncated", "truncated"]);
    expect(frames.map((f) => f.toString("hex"))).toEqual([arpRequest, udpRequest]);
    expect(d.midFrame).toBe(false);
  });

  it("keeps minFrame itself: a 14-byte frame is a frame", () => {
    const { d, frames, drops } = decoder();
    const header = bytes(arpRequest).subarray(0, 14);
    d.push(framed(header));
    expect(drops).toEqual([]);
    expect(frames).toHaveLength(1);
  });

  it("skips an oversize frame within maxSkip, also across chunks, and decodes the next", () => {
    const { d, frames, drops } = decoder();
    const big = Buffer.alloc(100_000, 0x5a);
    const stream = Buffer.concat([framed(bytes(arpRequest)), framed(big), framed(bytes(icmpEchoRequest))]);
    // Chunks of 4096 bytes, like socket reads: the skip spans many of them.
    for (let i = 0; i < stream.length; i += 4096) {
      expect(d.push(stream.subarray(i, i + 4096))).toBeUndefined();
      // Until the last chunk, the decoder is inside the skipped frame.
      if (i + 4096 < stream.length) expect(d.midFrame).toBe(true);
    }
    expect(drops).toEqual(["oversize"]);
    expect(frames.map((f) => f.toString("hex"))).toEqual([arpRequest, icmpEchoRequest]);
    expect(d.midFrame).toBe(false);
  });

  it("treats maxFrame as the largest frame allowed and one more as oversize", () => {
    const { d, frames, drops } = decoder();
    d.push(framed(Buffer.alloc(1518, 1), Buffer.alloc(1519, 2), Buffer.alloc(60, 3)));
    expect(frames.map((f) => [f.length, f[0]])).toEqual([
      [1518, 1],
      [60, 3],
    ]);
    expect(drops).toEqual(["oversize"]);
  });

  it("fails on a length beyond maxSkip and stays failed", () => {
    const { d, frames, drops } = decoder();
    const stream = Buffer.concat([
      framed(bytes(arpRequest)),
      lengthPrefix(1 << 30),
      framed(bytes(udpRequest)),
    ]);
    const failure = d.push(stream);
    expect(failure).toMatch(/1073741824/);
    // The frame before the bad length was delivered; nothing after it.
    expect(frames.map((f) => f.toString("hex"))).toEqual([arpRequest]);
    expect(drops).toEqual([]);
    expect(d.push(framed(bytes(icmpEchoRequest)))).toBe(failure);
    expect(frames).toHaveLength(1);
  });

  it("fails on a bad length whose header is split across chunks", () => {
    const { d, frames } = decoder();
    const garbage = Buffer.from("GET / HTTP/1.1\r\n");
    expect(d.push(garbage.subarray(0, 2))).toBeUndefined();
    expect(d.midFrame).toBe(true);
    const failure = d.push(garbage.subarray(2));
    // "GET " read as a length: 0x47455420.
    expect(failure).toMatch(String(0x47455420));
    expect(frames).toHaveLength(0);
  });

  it("a length of exactly maxSkip is skipped, not fatal", () => {
    const { d, frames, drops } = decoder({ minFrame: 14, maxFrame: 1518, maxSkip: 5000 });
    expect(d.push(Buffer.concat([lengthPrefix(5000), Buffer.alloc(5000)]))).toBeUndefined();
    expect(d.push(framed(bytes(arpReply)))).toBeUndefined();
    expect(drops).toEqual(["oversize"]);
    expect(frames).toHaveLength(1);
    expect(d.push(lengthPrefix(5001))).toMatch(/5001/);
  });

  it("reports midFrame while a header, a frame or a skip is incomplete", () => {
    const { d } = decoder();
    expect(d.midFrame).toBe(false);
    const frame = bytes(icmpEchoRequest);
    const stream = framed(frame);
    d.push(stream.subarray(0, 2));
    expect(d.midFrame).toBe(true);
    d.push(stream.subarray(2, 4));
    expect(d.midFrame).toBe(true); // header complete, frame not
    d.push(stream.subarray(4, stream.length - 1));
    expect(d.midFrame).toBe(true);
    d.push(stream.subarray(stream.length - 1));
    expect(d.midFrame).toBe(false);
    d.push(Buffer.concat([lengthPrefix(2000), Buffer.alloc(10)]));
    expect(d.midFrame).toBe(true); // skipping an oversize frame
    d.push(Buffer.alloc(1990));
    expect(d.midFrame).toBe(false);
    // A short frame still being skipped.
    d.push(Buffer.concat([lengthPrefix(5), Buffer.alloc(2)]));
    expect(d.midFrame).toBe(true);
    d.push(Buffer.alloc(3));
    expect(d.midFrame).toBe(false);
  });

  it("does not re-deliver or skip anything with an empty chunk", () => {
    const { d, frames } = decoder();
    const stream = framed(bytes(arpRequest));
    d.push(stream.subarray(0, 6));
    d.push(Buffer.alloc(0));
    d.push(stream.subarray(6));
    d.push(Buffer.alloc(0));
    expect(frames.map((f) => f.toString("hex"))).toEqual([arpRequest]);
  });
});
