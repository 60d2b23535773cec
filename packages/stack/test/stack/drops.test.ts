/**
 * Every frame the stack does not use is counted by reason, never silently lost: one case per drop
 * reason of the interface's dispatch, each frame built as a guest would send it (or break it).
 */
import { afterEach, describe, expect, it } from "vitest";
import { type FrameHarness, frameHarness, type ScriptedGuest } from "../../src/testing/frame-harness.js";
import { parseMac } from "../../src/wire/address.js";
import { emitEthernetHeader } from "../../src/wire/ethernet.js";
import { TCP_ACK, TCP_SYN } from "../../src/wire/tcp.js";

const MAC = "02:00:00:00:00:0a";
const IP = "192.168.65.3";

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** An Ethernet frame from the guest to `dst` with this ethertype and payload. */
function ethernet(dst: string, ethertype: number, payload = Buffer.alloc(46)): Buffer {
  const frame = Buffer.alloc(14 + payload.length);
  emitEthernetHeader(frame, 0, parseMac(dst)!, parseMac(MAC)!, ethertype);
  payload.copy(frame, 14);
  return frame;
}

/** The guest's SYN with one byte of its IPv4 header or TCP segment changed (a valid frame first). */
function broken(g: ScriptedGuest, gateway: string, edit: (frame: Buffer) => void): Buffer {
  let frame: Buffer | undefined;
  const capture = Object.create(g) as ScriptedGuest;
  capture.send = (f: Buffer) => {
    frame = f;
  };
  capture.tcp({ dst: gateway, srcPort: 40000, dstPort: 80, flags: TCP_SYN });
  edit(frame!);
  return frame!;
}

const cases: [reason: string, send: (h: FrameHarness, g: ScriptedGuest) => void][] = [
  ["multicast", (_h, g) => g.send(ethernet("01:00:5e:00:00:fb", 0x0800))],
  ["not-for-gateway", (_h, g) => g.send(ethernet("02:00:00:00:00:99", 0x0800))],
  // An IPv6 frame whose payload is zeros: no IPv6 header.
  ["ipv6-version", (h, g) => g.send(ethernet(h.config.gatewayMac, 0x86dd))],
  ["unknown-ethertype", (h, g) => g.send(ethernet(h.config.gatewayMac, 0x88b5))],
  ["ethernet-truncated", (_h, g) => g.send(Buffer.alloc(10))],
  ["ipv4-checksum", (h, g) => g.send(broken(g, h.config.gateway, (f) => (f[14 + 10]! ^= 0xff)))],
  ["ipv4-bad-version", (h, g) => g.send(broken(g, h.config.gateway, (f) => (f[14] = 0x65)))],
  ["tcp-checksum", (h, g) => g.send(broken(g, h.config.gateway, (f) => (f[14 + 20 + 16]! ^= 0xff)))],
  [
    "unknown-ip-protocol",
    (h, g) => g.ipPacket(h.config.gateway, { protocol: 132, payload: Buffer.alloc(8) }),
  ],
  ["udp-truncated", (h, g) => g.ipPacket(h.config.gateway, { protocol: 17, payload: Buffer.alloc(4) })],
  ["icmpv4-truncated", (h, g) => g.ipPacket(h.config.gateway, { protocol: 1, payload: Buffer.alloc(4) })],
  ["tcp-broadcast", (_h, g) => g.tcp({ dst: "192.168.65.255", srcPort: 1, dstPort: 2, flags: TCP_SYN })],
  ["udp-broadcast", (_h, g) => g.udp("192.168.65.255", 5353, 5353, Buffer.from("x"))],
  [
    "tcp-no-connection",
    (h, g) => g.tcp({ dst: h.config.hostAddress, srcPort: 1, dstPort: 2, flags: TCP_ACK }),
  ],
  ["icmp-echo-not-relayed", (_h, g) => g.ping("10.1.2.3")],
  [
    "icmp-type-13",
    (h, g) =>
      g.ipPacket(h.config.gateway, {
        protocol: 1,
        // A timestamp request, checksummed: 0x0d00 + 0 ... → ~0x0d00.
        payload: Buffer.from([13, 0, 0xf2, 0xff, 0, 0, 0, 0]),
      }),
  ],
  [
    "ip-src-unspecified",
    (h, g) => g.ipPacket(h.config.gateway, { protocol: 1, payload: Buffer.alloc(8) }, "0.0.0.0"),
  ],
];

describe("drop reasons", () => {
  it.each(cases)("%s", async (reason, send) => {
    h = frameHarness();
    const g = h.guest(MAC, IP);
    send(h, g);
    await h.settle();
    const drops = h.stack.counters().drops;
    expect(drops[reason], JSON.stringify(drops)).toBe(1);
    // Nothing else was counted for it.
    expect(
      Object.values(drops).reduce((a, b) => a + b, 0),
      JSON.stringify(drops),
    ).toBe(1);
  });
});
