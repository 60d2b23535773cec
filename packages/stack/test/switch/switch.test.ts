/**
 * The learning switch between guest links and the stack. Guests are in-memory links
 * (createTransportPair) whose far ends the tests drive with frames captured from real Linux
 * traffic; links with offload are a small FrameTransport that hands back frame and meta as sent.
 */
import * as net from "node:net";
import {
  type FrameMeta,
  type FrameReceiver,
  type FrameTransport,
  newTransportStats,
  type OffloadCapability,
} from "@desktopd/core";
import { describe, expect, it } from "vitest";
import { arpFrame, icmpFrame, TCP_FRAME_L4_OFFSET, tcpFrame, tcpHeaders } from "../../src/iface/frames.js";
import { createStack } from "../../src/stack.js";
import { segmentTcpFrame } from "../../src/switch/software-offload.js";
import {
  createSwitch,
  type SwitchOptions,
  type SwitchPortInfo,
  type VirtualSwitch,
} from "../../src/switch/switch.js";
import { createTransportPair } from "../../src/testing/pair.js";
import { streamTransport } from "../../src/transport/stream.js";
import {
  BROADCAST_MAC,
  ipv4ToString,
  macToString,
  parseIpv4Address,
  parseMac,
} from "../../src/wire/address.js";
import { ARP_REQUEST } from "../../src/wire/arp.js";
import { finish, pseudoHeaderSum, sum16 } from "../../src/wire/checksum.js";
import { DHCPACK, DHCPOFFER, parseDhcp } from "../../src/wire/dhcp.js";
import { parseEthernet } from "../../src/wire/ethernet.js";
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, parseIcmpv4 } from "../../src/wire/icmpv4.js";
import { IPPROTO_UDP, parseIpv4 } from "../../src/wire/ipv4.js";
import { parseTcp, TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN, type TcpEmitFields } from "../../src/wire/tcp.js";
import { parseUdp } from "../../src/wire/udp.js";
import { discover, LEASED_IP, request, SERVER_IP, XID } from "../fixtures/dhcp.js";
import { arpReply, arpRequest, icmpEchoReply, icmpEchoRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { until } from "../fixtures/streams.js";

/** Lets in-memory links deliver (each hop is one setImmediate). */
async function settle(turns = 6): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}

const hexes = (frames: Buffer[]) => frames.map((f) => f.toString("hex"));

const MAC_A = "02:00:00:00:00:0a"; // the captured frames' 10.99.0.1
const MAC_B = "02:00:00:00:00:0b"; // and 10.99.0.2
const GATEWAY_MAC = parseMac("5a:94:ef:e4:0c:dd")!;

/** A guest: an in-memory link on the switch, and its far end driven by the test. */
function guest(sw: VirtualSwitch, lend = false) {
  const [portSide, far] = createTransportPair({ lend });
  const port = sw.addPort(portSide);
  const g = { port, far, got: [] as Buffer[], closed: false, send: (f: Buffer) => far.send(f) };
  far.start({
    onFrame: (f) => g.got.push(f),
    onClose: () => {
      g.closed = true;
    },
  });
  return g;
}

/** The stack's side of the switch: records what the switch hands up. */
function uplink(sw: VirtualSwitch) {
  const up = { got: [] as { frame: Buffer; meta?: FrameMeta }[], closed: false };
  sw.start({
    onFrame: (frame, meta) => up.got.push(meta ? { frame, meta } : { frame }),
    onClose: () => {
      up.closed = true;
    },
  });
  return up;
}

/** A link with offload (a TAP with a virtio-net header): keeps what it is sent, meta included. */
class OffloadLink implements FrameTransport {
  readonly stats = newTransportStats();
  readonly sent: { frame: Buffer; meta?: FrameMeta; copy: Buffer }[] = [];
  private receiver: FrameReceiver | undefined;

  constructor(
    readonly name: string,
    readonly offload: OffloadCapability,
  ) {}

  send(frame: Buffer, meta?: FrameMeta): void {
    this.stats.framesOut++;
    // `copy` is the frame's content at the time it was handed over.
    this.sent.push(
      meta ? { frame, meta: { ...meta }, copy: Buffer.from(frame) } : { frame, copy: Buffer.from(frame) },
    );
  }

  start(receiver: FrameReceiver): void {
    this.receiver = receiver;
  }

  close(): Promise<void> {
    this.receiver?.onClose?.();
    return Promise.resolve();
  }

  /** Parts handed to `sendv`, as the very buffers given (a scatter link writes them at once). */
  readonly sentParts: { parts: readonly Buffer[]; meta?: FrameMeta }[] = [];

  /** Present only when asked: a link that writes frames in parts. */
  sendv?: (parts: readonly Buffer[], meta?: FrameMeta) => void;

  writesParts(): this {
    this.sendv = (parts, meta) => {
      this.stats.framesOut++;
      this.sentParts.push(meta ? { parts: [...parts], meta: { ...meta } } : { parts: [...parts] });
    };
    return this;
  }

  /** A frame from the guest behind this link. */
  deliver(frame: Buffer, meta?: FrameMeta): void {
    this.receiver!.onFrame(frame, meta);
  }
}

/** A gratuitous ARP from `mac`: a broadcast that teaches the switch where `mac` is. */
function hello(mac: string, ip = 0x0a630063): Buffer {
  const m = parseMac(mac)!;
  return arpFrame(m, BROADCAST_MAC, {
    op: ARP_REQUEST,
    senderMac: m,
    senderIp: ip,
    targetMac: Buffer.alloc(6),
    targetIp: ip,
  });
}

function macsOf(sw: VirtualSwitch): Record<number, string[]> {
  return Object.fromEntries(sw.ports().map((p: SwitchPortInfo) => [p.id, p.macs]));
}

function newSwitch(options: SwitchOptions = {}) {
  const sw = createSwitch(options);
  const up = uplink(sw);
  return { sw, up };
}

describe("createSwitch: forwarding", () => {
  it("floods a guest's broadcast to the stack and the other guests, not back", async () => {
    const { sw, up } = newSwitch();
    const [a, b, c] = [guest(sw), guest(sw), guest(sw)];
    a.send(Buffer.from(discover));
    await settle();
    expect(hexes(up.got.map((g) => g.frame))).toEqual([discover.toString("hex")]);
    expect(up.got[0]!.meta).toBeUndefined();
    expect(hexes(b.got)).toEqual([discover.toString("hex")]);
    expect(hexes(c.got)).toEqual([discover.toString("hex")]);
    expect(a.got).toEqual([]);
    // Towards the stack is "in", as for any transport.
    expect(sw.stats).toMatchObject({ framesIn: 1, bytesIn: discover.length });
  });

  it("copies a lent frame before another link or an uplink that takes no loans keeps it", async () => {
    const { sw, up } = newSwitch();
    const a = guest(sw, true);
    const b = guest(sw);
    const frame = hello(MAC_A);
    a.send(frame);
    await settle();
    // The lending link wrote 0xEE over its buffer once the switch returned: a view would show it.
    expect(hexes(up.got.map((g) => g.frame))).toEqual(hexes([frame]));
    expect(up.got[0]!.meta).toBeUndefined();
    expect(hexes(b.got)).toEqual(hexes([frame]));
  });

  it("floods unknown unicast, then sends to the learned port only", async () => {
    const { sw, up } = newSwitch();
    const [a, b, c] = [guest(sw), guest(sw), guest(sw)];
    // a (…:0a) pings b (…:0b), whose port is not known yet: everyone gets it.
    a.send(bytes(icmpEchoRequest));
    await settle();
    expect(hexes(b.got)).toEqual([icmpEchoRequest]);
    expect(hexes(c.got)).toEqual([icmpEchoRequest]);
    expect(up.got).toHaveLength(1);
    // b answers: a is known, so only a gets it.
    b.send(bytes(icmpEchoReply));
    await settle();
    expect(hexes(a.got)).toEqual([icmpEchoReply]);
    expect(c.got).toHaveLength(1);
    expect(up.got).toHaveLength(1);
    // Now b is known too.
    a.send(bytes(arpRequest)); // broadcast: everyone but a
    a.send(bytes(icmpEchoRequest));
    await settle();
    expect(hexes(b.got)).toEqual([icmpEchoRequest, arpRequest, icmpEchoRequest]);
    expect(hexes(c.got)).toEqual([icmpEchoRequest, arpRequest]);
    expect(up.got).toHaveLength(2);
    expect(macsOf(sw)).toEqual({ [a.port.id]: [MAC_A], [b.port.id]: [MAC_B], [c.port.id]: [] });
  });

  it("delivers a frame from the stack to the learned port only, and a guest's frame to the stack only", async () => {
    const { sw, up } = newSwitch();
    const [a, b] = [guest(sw), guest(sw)];
    a.send(bytes(arpRequest));
    b.send(hello(MAC_B));
    await settle();
    const toA = arpFrame(GATEWAY_MAC, parseMac(MAC_A)!, {
      op: 2,
      senderMac: GATEWAY_MAC,
      senderIp: 0x0a630063,
      targetMac: parseMac(MAC_A)!,
      targetIp: 0x0a630001,
    });
    sw.send(toA);
    await settle();
    expect(hexes(a.got)).toEqual([hexes([hello(MAC_B)])[0], toA.toString("hex")]);
    expect(b.got.map((f) => f.equals(toA))).toEqual([false]);
    // The stack's own MAC was learned on the uplink: a guest's unicast to it reaches only the stack.
    const up0 = up.got.length;
    const toGateway = Buffer.from(bytes(icmpEchoRequest));
    GATEWAY_MAC.copy(toGateway, 0);
    a.send(toGateway);
    await settle();
    expect(up.got.length).toBe(up0 + 1);
    expect(up.got.at(-1)!.frame.equals(toGateway)).toBe(true);
    expect(b.got).toHaveLength(1);
  });

  it("floods a frame from the stack to an unknown MAC to every guest, and a broadcast too", async () => {
    const { sw, up } = newSwitch();
    const [a, b] = [guest(sw), guest(sw)];
    const unknown = bytes(arpReply); // to …:0a, not learned yet
    sw.send(unknown);
    sw.send(bytes(arpRequest).fill(0x5a, 6, 7)); // a broadcast from 5a:00:…
    await settle();
    expect(hexes(a.got)).toEqual(hexes(b.got));
    expect(a.got).toHaveLength(2);
    expect(up.got).toEqual([]);
  });

  it("drops a frame back to the port it came from (hairpin)", async () => {
    const { sw, up } = newSwitch();
    const [a, b] = [guest(sw), guest(sw)];
    a.send(bytes(arpRequest));
    b.send(hello(MAC_B));
    await settle();
    const before = [a.got.length, b.got.length, up.got.length];
    const toSelf = bytes(icmpEchoRequest);
    parseMac(MAC_A)!.copy(toSelf, 0);
    a.send(toSelf);
    await settle();
    expect([a.got.length, b.got.length, up.got.length]).toEqual(before);
    expect(sw.stats.drops.hairpin).toBe(1);
  });

  it("refuses frames with a multicast or broadcast source and learns nothing from them", async () => {
    const { sw, up } = newSwitch();
    const [a, b] = [guest(sw), guest(sw)];
    const forged = bytes(arpRequest);
    Buffer.from("01005e000001", "hex").copy(forged, 6);
    const broadcastSource = bytes(icmpEchoReply);
    BROADCAST_MAC.copy(broadcastSource, 6);
    a.send(forged);
    a.send(broadcastSource);
    await settle();
    expect(b.got).toEqual([]);
    expect(up.got).toEqual([]);
    expect(sw.stats.drops["multicast-source"]).toBe(2);
    expect(macsOf(sw)[a.port.id]).toEqual([]);
  });

  it("drops a runt on the port's counters", async () => {
    const { sw, up } = newSwitch();
    const link = new OffloadLink("runt", { tso: false, csum: false });
    const b = guest(sw);
    sw.addPort(link);
    link.deliver(Buffer.alloc(13));
    sw.send(Buffer.alloc(10));
    await settle();
    expect(link.stats.drops.truncated).toBe(1);
    expect(b.got).toEqual([]);
    expect(up.got).toEqual([]);
  });
});

describe("createSwitch: ports coming and going", () => {
  it("removes a port whose link closes and forgets its MACs", async () => {
    const events: [string, number, string[]][] = [];
    const { sw, up } = newSwitch({ onPortChange: (e, p) => events.push([e, p.id, p.macs]) });
    const [a, b, c] = [guest(sw), guest(sw), guest(sw)];
    a.send(bytes(arpRequest));
    await settle();
    expect(sw.ports().map((p) => p.id)).toEqual([a.port.id, b.port.id, c.port.id]);
    // The guest's VMM exits: its end of the link closes.
    await a.far.close();
    await settle();
    expect(sw.ports().map((p) => p.id)).toEqual([b.port.id, c.port.id]);
    expect(events.at(-1)).toEqual(["removed", a.port.id, [MAC_A]]);
    expect(events.filter(([e]) => e === "added").map(([, id]) => id)).toEqual([
      a.port.id,
      b.port.id,
      c.port.id,
    ]);
    // Its MAC is unknown again: a frame to it floods.
    sw.send(bytes(arpReply));
    await settle();
    expect(b.got.at(-1)!.toString("hex")).toBe(arpReply);
    expect(c.got.at(-1)!.toString("hex")).toBe(arpReply);
    expect(up.got).toHaveLength(1);
  });

  it("announces a link that is gone at start as added, then removed", () => {
    const events: string[] = [];
    const { sw } = newSwitch({ onPortChange: (event) => events.push(event) });
    const socket = new net.Socket();
    socket.destroy();
    sw.addPort(streamTransport(socket, socket, { name: "gone" }));
    expect(events).toEqual(["added", "removed"]);
    expect(sw.ports()).toEqual([]);
  });

  it("SwitchPort.close takes the port off and closes its link", async () => {
    const removed: number[] = [];
    const { sw } = newSwitch({ onPortChange: (e, p) => e === "removed" && removed.push(p.id) });
    const [a, b] = [guest(sw), guest(sw)];
    await a.port.close();
    await settle();
    expect(a.closed).toBe(true);
    expect(removed).toEqual([a.port.id]);
    expect(sw.ports().map((p) => p.id)).toEqual([b.port.id]);
    b.send(bytes(arpRequest));
    await settle();
    expect(a.got).toEqual([]);
  });

  it("moves a MAC to the port it is seen on now (a guest reconnected on a new link)", async () => {
    const { sw } = newSwitch();
    const [a, b] = [guest(sw), guest(sw)];
    a.send(bytes(arpRequest));
    await settle();
    const again = guest(sw); // the same VM on a new link, before the old one is noticed gone
    again.send(bytes(arpRequest));
    await settle();
    expect(macsOf(sw)).toEqual({ [a.port.id]: [], [b.port.id]: [], [again.port.id]: [MAC_A] });
    b.send(bytes(arpReply));
    await settle();
    expect(hexes(again.got)).toEqual([arpReply]);
    expect(hexes(a.got)).toEqual([arpRequest]); // the new port's broadcast; the reply went to the new port
    // The old link closing later does not take the MAC with it.
    await a.far.close();
    await settle();
    expect(macsOf(sw)[again.port.id]).toEqual([MAC_A]);
    b.send(bytes(arpReply));
    await settle();
    expect(again.got).toHaveLength(2);
  });

  it("keeps at most maxMacs addresses, forgetting the oldest", async () => {
    const { sw, up } = newSwitch({ maxMacs: 3 });
    const [a, b] = [guest(sw), guest(sw)];
    const macs = ["02:00:00:00:01:01", "02:00:00:00:01:02", "02:00:00:00:01:03", "02:00:00:00:01:04"];
    for (const m of macs) a.send(hello(m));
    b.send(hello(MAC_B));
    await settle();
    expect(sw.stats.drops["mac-table-full"]).toBe(2);
    expect(macsOf(sw)).toEqual({ [a.port.id]: macs.slice(2), [b.port.id]: [MAC_B] });
    // The forgotten ones flood again; the remembered ones do not.
    const upBefore = up.got.length;
    const to = (mac: string) => {
      const f = bytes(icmpEchoReply);
      parseMac(mac)!.copy(f, 0);
      parseMac(MAC_B)!.copy(f, 6);
      return f;
    };
    const bBefore = b.got.length;
    b.send(to(macs[0]!));
    b.send(to(macs[3]!));
    await settle();
    expect(up.got.length).toBe(upBefore + 1);
    expect(a.got.filter((f) => f[5] === 0x01)).toHaveLength(1);
    expect(a.got.filter((f) => f[5] === 0x04)).toHaveLength(1);
    expect(b.got.length).toBe(bBefore);
    expect(sw.ports().reduce((n, p) => n + p.macs.length, 0)).toBeLessThanOrEqual(3);
  });

  it("never forgets the stack's MAC when a guest floods the table with made-up sources", async () => {
    // Otherwise every guest's traffic to the host would flood to all guests, the flooder included.
    const { sw, up } = newSwitch({ maxMacs: 8 });
    const [victim, flooder] = [guest(sw), guest(sw)];
    sw.send(hello("5a:94:ef:e4:0c:dd")); // the stack speaks first: its MAC is the oldest entry
    victim.send(hello(MAC_A));
    await settle();
    for (let i = 0; i < 20; i++) flooder.send(hello(`02:66:00:00:00:${i.toString(16).padStart(2, "0")}`));
    await settle();
    expect(sw.stats.drops["mac-table-full"]).toBeGreaterThan(0);
    const before = flooder.got.length;
    const toHost = bytes(icmpEchoRequest);
    GATEWAY_MAC.copy(toHost, 0);
    victim.send(toHost);
    await settle();
    expect(up.got.at(-1)!.frame.equals(toHost)).toBe(true);
    expect(flooder.got.length).toBe(before);
  });

  it("closing the switch closes every link and tells the stack", async () => {
    const { sw, up } = newSwitch();
    const [a, b] = [guest(sw), guest(sw)];
    await sw.close();
    await settle();
    expect(a.closed && b.closed).toBe(true);
    expect(up.closed).toBe(true);
    expect(() => sw.addPort(createTransportPair()[0])).toThrow(/closed/);
  });
});

describe("createSwitch: offload", () => {
  const GUEST = "02:00:00:00:00:03";
  const route = {
    srcMac: GATEWAY_MAC,
    dstMac: parseMac(GUEST)!,
    srcIp: parseIpv4Address("192.168.65.1")!,
    dstIp: parseIpv4Address("192.168.65.3")!,
  };
  const fields: TcpEmitFields = {
    srcPort: 80,
    dstPort: 40000,
    seq: 1000,
    ack: 1,
    flags: TCP_ACK | TCP_PSH | TCP_FIN,
    window: 1000,
    timestamp: { value: 1, echo: 2 },
  };
  const payload = Buffer.from(Array.from({ length: 40_000 }, (_, i) => (i * 7 + 3) & 0xff));
  const tso: FrameMeta = {
    gsoSize: 1448,
    checksumPartial: true,
    csumStart: TCP_FRAME_L4_OFFSET,
    csumOffset: 16,
  };
  const csum: FrameMeta = { checksumPartial: true, csumStart: TCP_FRAME_L4_OFFSET, csumOffset: 16 };

  function verified(frame: Buffer) {
    const ip = parseIpv4(parseEthernet(frame).payload);
    return parseTcp(ip.payload, ip.src, ip.dst, { verifyChecksum: true });
  }

  it("offers offload to the stack unless told not to", () => {
    expect(createSwitch().offload).toEqual({ tso: true, csum: true });
    expect(createSwitch({ offload: false }).offload).toBeUndefined();
  });

  it("cuts a super-frame for a port without offload into frames that verify", async () => {
    const { sw } = newSwitch();
    const g = guest(sw);
    g.send(hello(GUEST));
    await settle();
    const frame = tcpFrame(route, fields, payload, true);
    sw.send(frame, tso);
    await settle();
    expect(g.got).toHaveLength(Math.ceil(payload.length / 1448));
    const segs = g.got.map(verified);
    expect(Buffer.concat(segs.map((s) => s.payload)).equals(payload)).toBe(true);
    expect(segs.map((s) => s.seq)).toEqual(segs.map((_, i) => 1000 + i * 1448));
    expect(segs.filter((s) => s.flags & TCP_FIN)).toHaveLength(1);
    expect(segs.at(-1)!.flags & TCP_FIN).toBe(TCP_FIN);
    for (const f of g.got) expect(f.length).toBeLessThanOrEqual(14 + 20 + 32 + 1448);
  });

  it("finishes a partial checksum for a port without offload", async () => {
    const { sw } = newSwitch();
    const g = guest(sw);
    g.send(hello(GUEST));
    await settle();
    const small = Buffer.from("a small reply");
    sw.send(tcpFrame(route, fields, small, true), csum);
    await settle();
    expect(g.got).toHaveLength(1);
    expect(verified(g.got[0]!).payload.equals(small)).toBe(true);
    expect(g.got[0]!.equals(tcpFrame(route, fields, small).fill(0, 18, 20).fill(0, 24, 26))).toBe(false);
  });

  it("passes frame and meta unchanged to a port with offload", async () => {
    const { sw } = newSwitch();
    const link = new OffloadLink("tap", { tso: true, csum: true });
    sw.addPort(link);
    link.deliver(hello(GUEST));
    const frame = tcpFrame(route, fields, payload, true);
    const original = Buffer.from(frame);
    sw.send(frame, tso);
    sw.send(tcpFrame(route, fields, Buffer.from("x"), true), csum);
    expect(link.sent).toHaveLength(2);
    expect(link.sent[0]!.frame).toBe(frame);
    expect(link.sent[0]!.meta).toEqual(tso);
    expect(link.sent[0]!.copy.equals(original)).toBe(true);
    expect(link.sent[1]!.meta).toEqual(csum);
  });

  it("segments for a port that has checksum offload but no TSO", async () => {
    const { sw } = newSwitch();
    const link = new OffloadLink("csum-only", { tso: false, csum: true });
    sw.addPort(link);
    link.deliver(hello(GUEST));
    sw.send(tcpFrame(route, fields, payload, true), tso);
    sw.send(tcpFrame(route, fields, Buffer.from("x"), true), csum);
    // Cut and complete in software, then the small one passed through with its meta.
    expect(link.sent).toHaveLength(Math.ceil(payload.length / 1448) + 1);
    for (const s of link.sent.slice(0, -1)) {
      expect(s.meta).toBeUndefined();
      verified(s.frame);
    }
    expect(link.sent.at(-1)!.meta).toEqual(csum);
  });

  it("hands a frame in parts to a port that writes parts and takes its meta, without copying", () => {
    const { sw } = newSwitch();
    const link = new OffloadLink("tap", { tso: true, csum: true }).writesParts();
    sw.addPort(link);
    link.deliver(hello(GUEST));
    const head = tcpHeaders(route, fields, payload.length);
    const tail = [payload.subarray(0, 10_000), payload.subarray(10_000)];
    sw.sendv([head, ...tail], tso);
    expect(link.sent).toHaveLength(0);
    expect(link.sentParts).toHaveLength(1);
    const [got] = link.sentParts;
    expect(got!.parts[0]).toBe(head);
    expect(got!.parts[1]).toBe(tail[0]);
    expect(got!.parts[2]).toBe(tail[1]);
    expect(got!.meta).toEqual(tso);
    // The parts are the frame the copying path builds, byte for byte.
    expect(Buffer.concat(got!.parts as Buffer[]).equals(tcpFrame(route, fields, payload, true))).toBe(true);
    expect(sw.stats.framesOut).toBe(1);
  });

  it("cuts parts for a port that writes parts but has no TSO, into parts: the payload is never copied", () => {
    const { sw } = newSwitch();
    const csumOnly = new OffloadLink("csum-only", { tso: false, csum: true }).writesParts();
    sw.addPort(csumOnly);
    csumOnly.deliver(hello(GUEST));
    // The payload in three views of one buffer, cut at odd offsets, as the stack's send buffer has it.
    const views = [payload.subarray(0, 1001), payload.subarray(1001, 20_003), payload.subarray(20_003)];
    const head = tcpHeaders(route, fields, payload.length);
    const headBefore = Buffer.from(head);
    sw.sendv([head, ...views], tso);
    expect(csumOnly.sent).toHaveLength(0);
    expect(csumOnly.sentParts).toHaveLength(Math.ceil(payload.length / 1448));
    expect(sw.stats.framesOut).toBe(1);
    for (const { parts, meta } of csumOnly.sentParts) {
      expect(meta).toBeUndefined();
      // Every part after the new headers is a view of the sender's payload.
      for (const part of parts.slice(1)) expect(part.buffer).toBe(payload.buffer);
    }
    const segs = csumOnly.sentParts.map((x) => verified(Buffer.concat(x.parts as Buffer[])));
    expect(Buffer.concat(segs.map((x) => x.payload)).equals(payload)).toBe(true);
    // The same frames the copying path cuts, byte for byte; the sender's headers untouched.
    const cut = segmentTcpFrame(tcpFrame(route, fields, payload, true), 1448);
    expect(csumOnly.sentParts.map((x) => Buffer.concat(x.parts as Buffer[]).toString("hex"))).toEqual(
      cut.map((f) => f.toString("hex")),
    );
    expect(head.equals(headBefore)).toBe(true);
  });

  it("completes a partial checksum for a port that writes parts but has no checksum offload", () => {
    const { sw } = newSwitch();
    const plain = new OffloadLink("plain", { tso: false, csum: false }).writesParts();
    sw.addPort(plain);
    plain.deliver(hello(GUEST));
    const odd = payload.subarray(0, 1001);
    const head = tcpHeaders(route, fields, odd.length + 7);
    const headBefore = Buffer.from(head);
    const tail = Buffer.from("seven!!");
    sw.sendv([head, odd, tail], csum);
    expect(plain.sentParts).toHaveLength(1);
    const [{ parts, meta }] = plain.sentParts as [{ parts: readonly Buffer[]; meta?: FrameMeta }];
    expect(meta).toBeUndefined();
    expect(parts[1]).toBe(odd);
    expect(parts[2]).toBe(tail);
    const seg = verified(Buffer.concat(parts as Buffer[]));
    expect(seg.payload.equals(Buffer.concat([odd, tail]))).toBe(true);
    expect(head.equals(headBefore)).toBe(true);
  });

  it("joins parts for a port that does not write parts", async () => {
    // An in-memory link without sendv: joined, checksum completed.
    const { sw: sw2 } = newSwitch();
    const g = guest(sw2);
    g.send(hello(GUEST));
    await settle();
    const small = Buffer.from("joined");
    sw2.sendv([tcpHeaders(route, fields, small.length), small], csum);
    await settle();
    expect(g.got).toHaveLength(1);
    expect(verified(g.got[0]!).payload.equals(small)).toBe(true);
  });

  it("floods a partial-checksum frame to several ports without corrupting any copy", async () => {
    const { sw } = newSwitch();
    const withOffload = new OffloadLink("tap", { tso: true, csum: true });
    sw.addPort(withOffload);
    const plain = [guest(sw), guest(sw), guest(sw)];
    // To a MAC nobody has announced: flooded to every port.
    const small = tcpFrame(route, fields, Buffer.from("flooded reply, twice the same bytes"), true);
    const original = Buffer.from(small);
    sw.send(small, csum);
    const big = tcpFrame(route, fields, payload, true);
    sw.send(big, tso);
    await settle();
    expect(withOffload.sent).toHaveLength(2);
    expect(withOffload.sent[0]!.copy.equals(original)).toBe(true);
    expect(withOffload.sent[0]!.meta).toEqual(csum);
    // The frame the offload port owns still holds its partial checksum after the others were served.
    expect(withOffload.sent[0]!.frame.equals(original)).toBe(true);
    expect(withOffload.sent[1]!.meta).toEqual(tso);
    for (const g of plain) {
      expect(g.got).toHaveLength(1 + Math.ceil(payload.length / 1448));
      expect(verified(g.got[0]!).payload.toString()).toBe("flooded reply, twice the same bytes");
      const segs = g.got.slice(1).map(verified);
      expect(Buffer.concat(segs.map((s) => s.payload)).equals(payload)).toBe(true);
    }
    // Each port got buffers of its own.
    expect(plain[0]!.got[0]).not.toBe(plain[1]!.got[0]);
  });

  it("a partial-checksum frame from a guest with offload reaches the stack as is, and a plain guest completed", async () => {
    const { sw, up } = newSwitch();
    const tap = new OffloadLink("tap", { tso: true, csum: true });
    sw.addPort(tap);
    const plain = guest(sw);
    plain.send(hello(GUEST));
    await settle();
    // The guest behind the TAP sends to the guest on the plain link, and to the stack.
    const fromTap = {
      srcMac: parseMac("02:00:00:00:00:04")!,
      dstMac: parseMac(GUEST)!,
      srcIp: parseIpv4Address("192.168.65.4")!,
      dstIp: route.dstIp,
    };
    const frame = tcpFrame(fromTap, { ...fields, flags: TCP_ACK }, payload.subarray(0, 5000), true);
    tap.deliver(frame, tso);
    const toStack = tcpFrame({ ...fromTap, dstMac: GATEWAY_MAC }, fields, Buffer.from("hi"), true);
    sw.send(hello("5a:94:ef:e4:0c:dd"));
    tap.deliver(toStack, csum);
    await settle();
    const ipv4 = plain.got.filter((f) => f.readUInt16BE(12) === 0x0800);
    expect(ipv4.map((f) => verified(f).payload.length)).toEqual([1448, 1448, 1448, 656]);
    expect(Buffer.concat(ipv4.map((f) => verified(f).payload)).equals(payload.subarray(0, 5000))).toBe(true);
    expect(up.got.at(-1)!.frame).toBe(toStack);
    expect(up.got.at(-1)!.meta).toEqual(csum);
  });
});

describe("createSwitch with createStack: guests sharing the stack", { timeout: 30_000 }, () => {
  /** A captured DHCP frame as another client would send it: its MAC everywhere, its own xid. */
  function asClient(frame: Buffer, mac: Buffer, xid: number, requestedIp?: number): Buffer {
    const f = Buffer.from(frame);
    const old = Buffer.from(frame.subarray(6, 12));
    for (let at = f.indexOf(old); at !== -1; at = f.indexOf(old, at + 6)) mac.copy(f, at);
    const udp = 14 + (f[14]! & 0x0f) * 4;
    const dhcp = udp + 8;
    f.writeUInt32BE(xid, dhcp + 4);
    if (requestedIp !== undefined) {
      const opt = f.indexOf(Buffer.from([50, 4]), dhcp + 240);
      f.writeUInt32BE(requestedIp, opt + 2);
    }
    const length = f.readUInt16BE(udp + 4);
    const ip = parseIpv4(f.subarray(14));
    f.writeUInt16BE(0, udp + 6);
    const sum = finish(sum16(f, udp, udp + length, pseudoHeaderSum(ip.src, ip.dst, IPPROTO_UDP, length)));
    f.writeUInt16BE(sum === 0 ? 0xffff : sum, udp + 6);
    return f;
  }

  /**
   * The DHCP replies for the client with `xid` among what a guest received, checksums verified.
   * (Replies to a client without an address are broadcast, so every guest sees every OFFER and
   * picks its own by xid and chaddr, as a DHCP client does.)
   */
  function dhcpReplies(frames: Buffer[], xid: number, mac: Buffer) {
    return frames.flatMap((f) => {
      const eth = parseEthernet(f);
      if (eth.ethertype !== 0x0800) return [];
      const ip = parseIpv4(eth.payload);
      if (ip.protocol !== IPPROTO_UDP) return [];
      const udp = parseUdp(ip.payload, ip.src, ip.dst, { verifyChecksum: true });
      if (udp.srcPort !== 67) return [];
      const dhcp = parseDhcp(udp.payload);
      if (dhcp.xid !== xid || !dhcp.chaddr.subarray(0, 6).equals(mac)) return [];
      return [{ eth, ip, dhcp }];
    });
  }

  it("gives each guest its own DHCP lease, answers each alone, and keeps guest-to-guest traffic off the stack", async () => {
    const stack = createStack({ subnet: "10.77.0.0/24", firstLease: "10.77.0.56" });
    const sw = createSwitch();
    stack.attach(sw);
    try {
      const one = guest(sw);
      const two = guest(sw);
      const mac1 = parseMac("02:00:00:00:00:02")!; // the captured client
      const mac2 = parseMac("02:00:00:00:00:22")!;
      const xid2 = 0x2222_2222;
      one.send(Buffer.from(discover));
      two.send(asClient(discover, mac2, xid2));
      await until(
        () => dhcpReplies(one.got, XID, mac1).length === 1 && dhcpReplies(two.got, xid2, mac2).length === 1,
        "two offers",
      );
      const [offer1] = dhcpReplies(one.got, XID, mac1);
      const [offer2] = dhcpReplies(two.got, xid2, mac2);
      expect(offer1!.dhcp.messageType).toBe(DHCPOFFER);
      expect(offer2!.dhcp.messageType).toBe(DHCPOFFER);
      expect(offer1!.dhcp.xid).toBe(XID);
      expect(offer2!.dhcp.xid).toBe(xid2);
      expect(offer1!.dhcp.chaddr.subarray(0, 6).equals(mac1)).toBe(true);
      expect(offer1!.dhcp.yiaddr).toBe(LEASED_IP); // 10.77.0.56, as dnsmasq offered in the capture
      expect(offer2!.dhcp.yiaddr).not.toBe(LEASED_IP);
      expect(offer2!.dhcp.yiaddr >>> 8).toBe(LEASED_IP >>> 8);
      expect(offer1!.ip.src).toBe(SERVER_IP);
      // Each saw the other's DISCOVER (a broadcast); neither saw its own come back.
      expect(one.got.some((f) => f.subarray(6, 12).equals(mac2))).toBe(true);
      expect(two.got.some((f) => f.subarray(6, 12).equals(mac1))).toBe(true);
      expect(one.got.some((f) => f.subarray(6, 12).equals(mac1))).toBe(false);
      // Two offers of two addresses: the stack saw two clients through one uplink.
      expect(stack.counters().frames.in).toBe(2);

      // REQUEST → ACK, each for its own address.
      one.send(Buffer.from(request));
      two.send(asClient(request, mac2, xid2, offer2!.dhcp.yiaddr));
      await until(
        () => dhcpReplies(one.got, XID, mac1).length === 2 && dhcpReplies(two.got, xid2, mac2).length === 2,
        "two acks",
      );
      const ack1 = dhcpReplies(one.got, XID, mac1)[1]!;
      const ack2 = dhcpReplies(two.got, xid2, mac2)[1]!;
      expect(ack1.dhcp.messageType).toBe(DHCPACK);
      expect(ack2.dhcp.messageType).toBe(DHCPACK);
      expect(ack1.dhcp.yiaddr).toBe(LEASED_IP);
      expect(ack2.dhcp.yiaddr).toBe(offer2!.dhcp.yiaddr);
      const leases = stack
        .leases()
        .map((l) => [l.mac, l.ip])
        .sort();
      expect(leases).toEqual(
        [
          [macToString(mac1), ipv4ToString(LEASED_IP)],
          [macToString(mac2), ipv4ToString(offer2!.dhcp.yiaddr)],
        ].sort(),
      );

      // Both ping the gateway: each reply goes to its own guest only.
      const ip1 = LEASED_IP;
      const ip2 = offer2!.dhcp.yiaddr;
      const ping = (mac: Buffer, src: number, id: number) =>
        icmpFrame(
          { srcMac: mac, dstMac: GATEWAY_MAC, srcIp: src, dstIp: SERVER_IP },
          { type: ICMP_ECHO_REQUEST, code: 0, rest: (id << 16) | 1, payload: Buffer.from(`guest ${id}`) },
        );
      // The gateway's MAC, from the offers (the stack's own frames).
      expect(offer1!.eth.src.equals(GATEWAY_MAC)).toBe(true);
      const seen1 = one.got.length;
      const seen2 = two.got.length;
      one.send(ping(mac1, ip1, 1));
      two.send(ping(mac2, ip2, 2));
      await until(() => one.got.length === seen1 + 1 && two.got.length === seen2 + 1, "echo replies");
      for (const [g, dst, id] of [
        [one, ip1, 1],
        [two, ip2, 2],
      ] as const) {
        const ip = parseIpv4(parseEthernet(g.got.at(-1)!).payload);
        expect(ip.dst).toBe(dst);
        const icmp = parseIcmpv4(ip.payload, { verifyChecksum: true });
        expect(icmp.type).toBe(ICMP_ECHO_REPLY);
        expect(icmp.payload.toString()).toBe(`guest ${id}`);
      }

      // Guest to guest: straight through the switch, the stack sees nothing.
      const stackFrames = stack.counters().frames.in;
      const direct = ping(mac1, ip1, 3);
      mac2.copy(direct, 0);
      one.send(direct);
      await until(() => two.got.length === seen2 + 2, "the direct frame");
      expect(two.got.at(-1)!.equals(direct)).toBe(true);
      await settle();
      expect(stack.counters().frames.in).toBe(stackFrames);
      expect(one.got.length).toBe(seen1 + 1);
    } finally {
      await stack.close();
    }
  });

  it("carries the stack's TCP super-frames to a guest without offload as MSS frames", async () => {
    // A host server sends 64 KiB to a guest connection. The stack sees the switch's TSO and
    // emits super-frames; the guest, on a plain link, must get ordinary frames that verify.
    const data = Buffer.from(Array.from({ length: 65_536 }, (_, i) => (i * 13 + (i >> 9)) & 0xff));
    const server = net.createServer((s) => s.end(data));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as net.AddressInfo).port;
    const stack = createStack();
    const sw = createSwitch();
    stack.attach(sw);
    try {
      const g = guest(sw);
      const guestMac = parseMac("02:00:00:00:00:03")!;
      const gateway = parseMac(stack.config.gatewayMac)!;
      const r = {
        srcMac: guestMac,
        dstMac: gateway,
        srcIp: parseIpv4Address("192.168.65.3")!,
        dstIp: parseIpv4Address(stack.config.hostAddress)!,
      };
      const seg = (flags: number, seq: number, ack: number, extra: Partial<TcpEmitFields> = {}) =>
        tcpFrame(r, { srcPort: 40000, dstPort: port, seq, ack, flags, window: 65535, ...extra }, undefined);
      g.send(seg(TCP_SYN, 1000, 0, { mss: 1460, windowScale: 7 }));
      const tcpOf = (f: Buffer) => {
        const ip = parseIpv4(parseEthernet(f).payload);
        return { ip, tcp: parseTcp(ip.payload, ip.src, ip.dst, { verifyChecksum: true }) };
      };
      await until(
        () => g.got.some((f) => f.readUInt16BE(12) === 0x0800 && tcpOf(f).tcp.flags & TCP_SYN),
        "SYN-ACK",
      );
      const synAck = tcpOf(
        g.got.find((f) => f.readUInt16BE(12) === 0x0800 && tcpOf(f).tcp.flags & TCP_SYN)!,
      ).tcp;
      const iss = synAck.seq;
      let acked = (iss + 1) >>> 0;
      g.send(seg(TCP_ACK, 1001, acked));
      const received: Buffer[] = [];
      let fin = false;
      let seen = 0;
      const deadline = Date.now() + 20_000;
      while (!fin && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 5));
        for (; seen < g.got.length; seen++) {
          const f = g.got[seen]!;
          if (f.readUInt16BE(12) !== 0x0800) continue;
          const { ip, tcp } = tcpOf(f);
          expect(ip.totalLength - ip.headerLength - tcp.headerLength).toBeLessThanOrEqual(1460);
          if (tcp.payload.length > 0) {
            expect(tcp.seq).toBe(acked); // in order, nothing lost on an in-memory link
            received.push(Buffer.from(tcp.payload));
            acked = (acked + tcp.payload.length) >>> 0;
          }
          if (tcp.flags & TCP_FIN) {
            fin = true;
            acked = (acked + 1) >>> 0;
          }
        }
        g.send(seg(TCP_ACK, 1001, acked));
      }
      expect(fin).toBe(true);
      expect(Buffer.concat(received).equals(data)).toBe(true);
      // Fewer frames left the stack than reached the guest: the switch cut super-frames.
      const dataFrames = received.length;
      expect(dataFrames).toBeGreaterThanOrEqual(Math.ceil(data.length / 1460));
      expect(stack.counters().frames.out).toBeLessThan(dataFrames);
      g.send(seg(TCP_ACK | TCP_FIN, 1001, acked));
      await settle();
    } finally {
      await stack.close();
      await new Promise((r) => server.close(r));
    }
  });
});
