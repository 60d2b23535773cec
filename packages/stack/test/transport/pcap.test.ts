import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FrameTransport } from "@desktopd/core";
import { afterAll, describe, expect, it } from "vitest";
import { TransportError } from "../../src/errors.js";
import { createTransportPair } from "../../src/testing/pair.js";
import { withPcap } from "../../src/transport/pcap.js";
import { arpReply, arpRequest, icmpEchoReply, icmpEchoRequest, udpRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";

const dir = mkdtempSync(join(tmpdir(), "dtd-pcap-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface PcapRecord {
  seconds: number;
  micros: number;
  capturedLength: number;
  originalLength: number;
  data: Buffer;
}

/** Reads a little-endian classic pcap file: the global header fields and every record. */
function readPcap(file: Buffer) {
  const header = {
    magic: file.readUInt32LE(0),
    major: file.readUInt16LE(4),
    minor: file.readUInt16LE(6),
    snaplen: file.readUInt32LE(16),
    linktype: file.readUInt32LE(20),
  };
  const records: PcapRecord[] = [];
  let offset = 24;
  while (offset < file.length) {
    const capturedLength = file.readUInt32LE(offset + 8);
    records.push({
      seconds: file.readUInt32LE(offset),
      micros: file.readUInt32LE(offset + 4),
      capturedLength,
      originalLength: file.readUInt32LE(offset + 12),
      data: file.subarray(offset + 16, offset + 16 + capturedLength),
    });
    offset += 16 + capturedLength;
  }
  expect(offset).toBe(file.length);
  return { header, records };
}

function collect(t: FrameTransport): Buffer[] {
  const got: Buffer[] = [];
  t.start({ onFrame: (f) => got.push(f) });
  return got;
}

const turn = () => new Promise((r) => setImmediate(r));

function tcpdumpAvailable(): boolean {
  try {
    execFileSync("tcpdump", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe("withPcap", () => {
  it("records both directions in a file tcpdump reads", async () => {
    const path = join(dir, "both.pcap");
    const [a, b] = createTransportPair();
    // 1.5 s after the epoch plus 250 µs per frame: checks the seconds/microseconds split.
    let t = 1_700_000_000_000.5;
    const capture = withPcap(a, path, {
      now: () => {
        t += 0.25;
        return t;
      },
    });
    const atCapture = collect(capture);
    const atPeer = collect(b);

    capture.send(bytes(arpRequest));
    b.send(bytes(arpReply));
    await turn();
    capture.send(bytes(icmpEchoRequest));
    b.send(bytes(icmpEchoReply));
    capture.send(bytes(udpRequest));
    await turn();
    await capture.close();

    expect(atPeer.map((f) => f.toString("hex"))).toEqual([arpRequest, icmpEchoRequest, udpRequest]);
    expect(atCapture.map((f) => f.toString("hex"))).toEqual([arpReply, icmpEchoReply]);
    expect(capture.stats.pcap).toMatchObject({ records: 5, dropped: 0 });

    const { header, records } = readPcap(readFileSync(path));
    expect(header).toEqual({ magic: 0xa1b2c3d4, major: 2, minor: 4, snaplen: 262144, linktype: 1 });
    expect(records.map((r) => r.data.toString("hex"))).toEqual([
      arpRequest,
      arpReply,
      icmpEchoRequest,
      udpRequest,
      icmpEchoReply,
    ]);
    for (const r of records) expect(r.originalLength).toBe(r.capturedLength);
    expect(records[0]).toMatchObject({ seconds: 1_700_000_000, micros: 750 });
    expect(records[4]).toMatchObject({ seconds: 1_700_000_000, micros: 1750 });
  });

  it.skipIf(!tcpdumpAvailable())("produces a file tcpdump decodes frame by frame", async () => {
    const path = join(dir, "tcpdump.pcap");
    const [a, b] = createTransportPair();
    const capture = withPcap(a, path);
    collect(capture);
    collect(b);
    capture.send(bytes(arpRequest));
    b.send(bytes(arpReply));
    await turn();
    capture.send(bytes(icmpEchoRequest));
    await capture.close();
    const out = execFileSync("tcpdump", ["-r", path, "-nn", "-e"], { stdio: ["ignore", "pipe", "pipe"] })
      .toString()
      .trim()
      .split("\n");
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(
      /02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff, ethertype ARP .*Request who-has 10\.99\.0\.2 tell 10\.99\.0\.1/,
    );
    expect(out[1]).toMatch(
      /02:00:00:00:00:0b > 02:00:00:00:00:0a, ethertype ARP .*Reply 10\.99\.0\.2 is-at 02:00:00:00:00:0b/,
    );
    expect(out[2]).toMatch(/10\.99\.0\.1 > 10\.99\.0\.2: ICMP echo request, id 5858, seq 0/);
  });

  it("drops records, not frames, when the write buffer is full", async () => {
    const path = join(dir, "bounded.pcap");
    const [a, b] = createTransportPair();
    // Room for the 24-byte header and three 58-byte ARP records, no more.
    const capture = withPcap(a, path, { maxBufferBytes: 24 + 3 * 58 });
    const atPeer = collect(b);
    collect(capture);
    // All sent in one turn, before any write can complete.
    for (let i = 0; i < 10; i++) capture.send(bytes(arpRequest));
    await turn();
    await capture.close();
    expect(atPeer).toHaveLength(10);
    expect(capture.stats.pcap).toMatchObject({ records: 3, dropped: 7 });
    expect(readPcap(readFileSync(path)).records).toHaveLength(3);
  });

  it("throws a TransportError when the file cannot be created", () => {
    const [a] = createTransportPair();
    let error: unknown;
    try {
      withPcap(a, join(dir, "missing-dir", "x.pcap"));
    } catch (e) {
      error = e;
    }
    expect(TransportError.isInstance(error)).toBe(true);
  });

  it("flushes everything on close and stops recording afterwards", async () => {
    const path = join(dir, "close.pcap");
    const [a, b] = createTransportPair();
    const capture = withPcap(a, path);
    collect(b);
    collect(capture);
    // Many frames in one turn: more than one 64 KiB chunk has to reach the disk before close settles.
    const frame = Buffer.alloc(1514, 0xab);
    for (let i = 0; i < 200; i++) capture.send(Buffer.from(frame));
    await capture.close();
    await capture.close();
    capture.send(Buffer.from(frame));
    const { records } = readPcap(readFileSync(path));
    expect(records).toHaveLength(200);
    expect(records.every((r) => r.data.equals(frame))).toBe(true);
    expect(capture.stats.pcap.dropped).toBe(1);
  });
});
