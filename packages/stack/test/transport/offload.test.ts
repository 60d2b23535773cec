/**
 * The pieces of TAP offload that need no device: the partial TCP checksum, meta and capability
 * passing through the decorators, and a connection emitting super-segments (`maxBurstSegment`).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FrameMeta, FrameReceiver, FrameTransport } from "@desktopd/core";
import { ManualClock, newTransportStats, SeededRandom } from "@desktopd/core";
import { afterAll, describe, expect, it } from "vitest";
import { TCP_FRAME_L4_OFFSET, tcpFrame } from "../../src/iface/frames.js";
import { Connection, type ConnectionHooks } from "../../src/tcp/connection.js";
import { withFaults } from "../../src/transport/fault.js";
import { withPcap } from "../../src/transport/pcap.js";
import { finish, sum16 } from "../../src/wire/checksum.js";
import { parseIpv4 } from "../../src/wire/ipv4.js";
import { parseTcp, TCP_ACK, TCP_SYN, type TcpEmitFields, type TcpSegment } from "../../src/wire/tcp.js";

const dir = mkdtempSync(join(tmpdir(), "dtd-offload-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const route = {
  srcMac: Buffer.from("5a9400000001", "hex"),
  dstMac: Buffer.from("5a9400000002", "hex"),
  srcIp: 0xc0a841fe,
  dstIp: 0xc0a84103,
};
const fields: TcpEmitFields = { srcPort: 80, dstPort: 40000, seq: 1, ack: 2, flags: TCP_ACK, window: 512 };

describe("partial TCP checksum", () => {
  it("holds the folded pseudo-header sum that completes to the full checksum", () => {
    const payload = Buffer.from(Array.from({ length: 3001 }, (_, i) => (i * 7) & 0xff));
    const full = tcpFrame(route, fields, payload);
    const partial = tcpFrame(route, fields, payload, true);
    const at = TCP_FRAME_L4_OFFSET + 16;
    // What the kernel does for NEEDS_CSUM: checksum from csum_start with the field as seeded.
    const completed = finish(sum16(partial, TCP_FRAME_L4_OFFSET, partial.length));
    expect(completed).toBe(full.readUInt16BE(at));
    partial.writeUInt16BE(completed, at);
    // Frames differ only in the IP identification (and so the IP header checksum).
    expect(partial.subarray(TCP_FRAME_L4_OFFSET).equals(full.subarray(TCP_FRAME_L4_OFFSET))).toBe(true);
    const ip = parseIpv4(partial.subarray(14));
    expect(() => parseTcp(ip.payload, ip.src, ip.dst)).not.toThrow();
  });
});

/** An inner link that records what it is sent and lets the test deliver frames. */
function fakeLink(offload?: { tso: boolean; csum: boolean }) {
  const sent: { frame: Buffer; meta?: FrameMeta; args: number }[] = [];
  let receiver: FrameReceiver | undefined;
  const link: FrameTransport = {
    name: "fake",
    stats: newTransportStats(),
    offload,
    send(...args: [Buffer, FrameMeta?]) {
      sent.push({ frame: args[0], meta: args[1], args: args.length });
    },
    start(r) {
      receiver = r;
    },
    close: async () => {},
  };
  return {
    link,
    sent,
    deliver: (f: Buffer, m?: FrameMeta) => (m ? receiver!.onFrame(f, m) : receiver!.onFrame(f)),
  };
}

describe("decorators and offload", () => {
  const meta: FrameMeta = { gsoSize: 1460, checksumPartial: true, csumStart: 34, csumOffset: 16 };

  it("pcap reports the inner capability and passes meta both ways", async () => {
    const inner = fakeLink({ tso: true, csum: true });
    const t = withPcap(inner.link, join(dir, "a.pcap"));
    expect(t.offload).toEqual({ tso: true, csum: true });
    const got: [Buffer, FrameMeta | undefined][] = [];
    t.start({ onFrame: (f, m) => got.push([f, m]) });
    const frame = tcpFrame(route, fields, Buffer.alloc(4000), true);
    t.send(frame, meta);
    t.send(Buffer.from(frame));
    inner.deliver(frame, meta);
    expect(inner.sent[0]!.meta).toEqual(meta);
    expect(inner.sent[1]!.args).toBe(1); // no meta: called exactly as before
    expect(got[0]![1]).toEqual(meta);
    await t.close();
  });

  it("the fault injector keeps meta with its frame, also when it reorders or duplicates", async () => {
    const inner = fakeLink({ tso: false, csum: true });
    const t = withFaults(inner.link, { seed: 7, duplicate: 0.3, reorder: 0.3, direction: "out" });
    expect(t.offload).toEqual({ tso: false, csum: true });
    t.start({ onFrame: () => {} });
    for (let i = 0; i < 50; i++) {
      const f = Buffer.alloc(60);
      f.writeUInt16BE(i, 0);
      if (i % 2) t.send(f, { ...meta, gsoSize: i });
      else t.send(f);
    }
    await t.close();
    expect(inner.sent.length).toBeGreaterThan(50);
    for (const { frame, meta: m } of inner.sent) {
      const i = frame.readUInt16BE(0);
      expect(m?.gsoSize).toBe(i % 2 ? i : undefined);
    }
  });

  it("a link without offload reports none", () => {
    expect(withFaults(fakeLink().link, { seed: 1 }).offload).toBeUndefined();
  });
});

describe("connection with maxBurstSegment", () => {
  function open(maxBurstSegment?: number) {
    const out: { fields: TcpEmitFields; length: number; segmentSize?: number }[] = [];
    const hooks: ConnectionHooks = {
      output: (f, p, segmentSize) => out.push({ fields: f, length: p?.length ?? 0, segmentSize }),
      onData: () => {},
      onEstablished: () => {},
      onFin: () => {},
      onSendSpace: () => {},
      onClose: () => {},
      receiveBacklog: () => 0,
      requestFlush: () => {},
    };
    const syn: TcpSegment = {
      srcPort: 40000,
      dstPort: 80,
      seq: 1000,
      ack: 0,
      flags: TCP_SYN,
      window: 65535,
      urgent: 0,
      headerLength: 24,
      mss: 1460,
      windowScale: 7,
      sackPermitted: true,
      payload: Buffer.alloc(0),
    };
    const options = { clock: new ManualClock(), random: new SeededRandom(1), mss: 1460, maxBurstSegment };
    const conn = Connection.accept(syn, options, hooks);
    const iss = out[0]!.fields.seq;
    const ack = (ackNo: number, window: number): TcpSegment => ({
      ...syn,
      seq: 1001,
      ack: ackNo >>> 0,
      flags: TCP_ACK,
      window,
      mss: undefined,
      windowScale: undefined,
      sackPermitted: false,
    });
    conn.onSegment(ack(iss + 1, 4096), 0); // 4096 << 7 = 512 KiB
    out.length = 0;
    return { conn, out, iss, ack };
  }

  it("default: one MSS per segment, no segment size", () => {
    const { conn, out } = open();
    conn.send(Buffer.alloc(100_000));
    expect(out.length).toBeGreaterThan(0);
    for (const s of out) {
      expect(s.length).toBeLessThanOrEqual(1460);
      expect(s.segmentSize).toBeUndefined();
    }
  });

  it("emits whole-MSS super-segments within cwnd and the window", () => {
    const { conn, out, iss, ack } = open(65535 - 80);
    conn.send(Buffer.alloc(1_000_000));
    // Initial window 10 MSS: one super-segment of 14600 bytes.
    expect(out.map((s) => s.length)).toEqual([14600]);
    expect(out[0]!.segmentSize).toBe(1460);
    out.length = 0;
    // One ACK for all of it grows cwnd by all of it (slow start counting bytes, not ACKs).
    conn.onSegment(ack(iss + 1 + 14600, 4096), 0);
    const sent = out.reduce((n, s) => n + s.length, 0);
    expect(sent).toBe(29200);
    for (const s of out) {
      expect(s.length % 1460).toBe(0);
      expect(s.length).toBeLessThanOrEqual(44 * 1460);
    }
    // A small window is respected: 20 << 7 = 2560 bytes leave room for one whole MSS.
    out.length = 0;
    conn.onSegment(ack(iss + 1 + 14600 + 29200, 20), 0);
    expect(out.map((s) => [s.length, s.segmentSize])).toEqual([[1460, undefined]]);
  });
});
