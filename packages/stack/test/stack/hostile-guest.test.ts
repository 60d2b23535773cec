/**
 * The stack driven frame by frame as a hostile guest would: resets in the middle of handshakes,
 * handlers that throw, spoofed sources, a DHCP flood, and limits per guest. Each case gets the
 * protocol's answer (or silence), is counted, and leaves the stack serving everyone else.
 */
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { DialError } from "../../src/errors.js";
import {
  DHCP,
  expectFrame,
  type FrameHarness,
  frameHarness,
  IPv4,
  SrcAddr,
  TCP,
} from "../../src/testing/frame-harness.js";
import { Flags } from "../../src/testing/tcp-harness.js";
import { DHCPACK, DHCPDISCOVER, DHCPOFFER, DHCPREQUEST } from "../../src/wire/dhcp.js";
import { ETHERTYPE_IPV6 } from "../../src/wire/ethernet.js";
import { addressSum6, ipv6ToString, parseIpv6 } from "../../src/wire/ipv6.js";
import { parseTcpWith, TCP_ACK, TCP_RST, TCP_SYN } from "../../src/wire/tcp.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };
const B = { mac: "02:00:00:00:00:0b", ip: "192.168.65.4" };

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** A policy serving port 53 on the gateway in-process, recording what reached the handler. */
function serving(onStream: (s: Duplex) => void = () => {}) {
  const handed: Duplex[] = [];
  return {
    handed,
    policy: {
      tcp: (flow: { dstIp: string; dstPort: number }) =>
        flow.dstPort === 53 && flow.dstIp === "192.168.65.1"
          ? {
              action: "handle" as const,
              handler: (s: Duplex) => {
                handed.push(s);
                onStream(s);
              },
            }
          : undefined,
    },
  };
}

describe("TCP flows served in-process", () => {
  it("a guest that answers the SYN-ACK with RST (a SYN scan) gets nothing handed over, and nothing crashes", async () => {
    const s = serving();
    h = frameHarness({ policy: s.policy });
    const g = h.guest(A.mac, A.ip);
    g.tcp({ dst: h.config.gateway, srcPort: 40000, dstPort: 53, flags: TCP_SYN, seq: 100 });
    await h.settle();
    const [synAck] = h.take();
    expectFrame(synAck, IPv4(SrcAddr(h.config.gateway)), TCP(Flags(TCP_SYN | TCP_ACK)));
    g.tcp({ dst: h.config.gateway, srcPort: 40000, dstPort: 53, flags: TCP_RST, seq: 101 });
    await h.settle();
    expect(s.handed).toHaveLength(0);
    const c = h.stack.counters();
    expect(c.tcp.open).toBe(0);
    expect(c.tcp.reset).toBe(1);
  });

  it("a reset right after the handshake's ACK, in the same batch, never reaches the handler", async () => {
    const s = serving();
    h = frameHarness({ policy: s.policy });
    const g = h.guest(A.mac, A.ip);
    g.tcp({ dst: h.config.gateway, srcPort: 40001, dstPort: 53, flags: TCP_SYN, seq: 100 });
    await h.settle();
    const synAck = h.take()[0]!.tcp!;
    g.tcp({
      dst: h.config.gateway,
      srcPort: 40001,
      dstPort: 53,
      flags: TCP_ACK,
      seq: 101,
      ack: synAck.seq + 1,
    });
    g.tcp({ dst: h.config.gateway, srcPort: 40001, dstPort: 53, flags: TCP_RST, seq: 101 });
    await h.settle();
    expect(s.handed).toHaveLength(0);
    expect(h.stack.counters().tcp.open).toBe(0);
  });

  it("a handler that throws loses its flow (RST, counted), and the next flow is served", async () => {
    let calls = 0;
    const s = serving((stream) => {
      calls++;
      if (calls === 1) throw new Error("handler bug");
      stream.end("ok");
    });
    h = frameHarness({ policy: s.policy });
    const g = h.guest(A.mac, A.ip);
    const out = [];
    for (const port of [40002, 40003]) {
      g.tcp({ dst: h.config.gateway, srcPort: port, dstPort: 53, flags: TCP_SYN, seq: 100 });
      await h.settle();
      const synAck = h.take()[0]!.tcp!;
      g.tcp({
        dst: h.config.gateway,
        srcPort: port,
        dstPort: 53,
        flags: TCP_ACK,
        seq: 101,
        ack: synAck.seq + 1,
      });
      await h.settle();
      out.push(...h.take());
    }
    expect(out.some((f) => f.tcp?.dstPort === 40002 && f.tcp.flags & TCP_RST)).toBe(true);
    expect(out.some((f) => f.tcp?.dstPort === 40003 && f.tcp.payload.toString() === "ok")).toBe(true);
    const c = h.stack.counters();
    expect(c.tcp.internalErrors).toBe(1);
    expect(c.drops["tcp-internal-error"]).toBe(1);
  });
});

describe("dialling into a guest", () => {
  it("a SYN-ACK and an RST in one batch reject the dial with DialError, nothing unhandled", async () => {
    h = frameHarness();
    const g = h.guest(A.mac, A.ip);
    g.ping(h.config.gateway); // the stack learns the guest's MAC
    await h.settle();
    h.take();
    const dial = h.stack.connect(A.ip, 22);
    await h.settle();
    const syn = h.take().find((f) => f.tcp?.flags === TCP_SYN)!.tcp!;
    const reply = { dst: h.config.hostAddress, srcPort: 22, dstPort: syn.srcPort };
    g.tcp({ ...reply, flags: TCP_SYN | TCP_ACK, seq: 5000, ack: syn.seq + 1 });
    g.tcp({ ...reply, flags: TCP_RST, seq: 5001 });
    const error = await dial.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(DialError.isInstance(error)).toBe(true);
    expect((error as DialError).reason).toBe("reset");
    expect(h.stack.counters().tcp.open).toBe(0);
  });
});

describe("source addresses", () => {
  it("a second MAC using an address in use is dropped until the first has been silent for a minute", async () => {
    const s = serving((stream) => stream.end());
    h = frameHarness({ policy: s.policy });
    const a = h.guest(A.mac, A.ip);
    const thief = h.guest(B.mac, A.ip);
    a.ping(h.config.gateway);
    await h.settle();
    expect(h.take()).toHaveLength(1);
    thief.ping(h.config.gateway);
    await h.settle();
    expect(h.take()).toHaveLength(0);
    expect(h.stack.counters().drops["ip-src-spoofed"]).toBe(1);
    await h.advance(60_000);
    thief.ping(h.config.gateway);
    await h.settle();
    expect(h.take()).toHaveLength(1);
  });

  it("an address leased by DHCP belongs to its MAC alone, however long it is silent", async () => {
    h = frameHarness();
    const a = h.guest(A.mac, A.ip);
    a.dhcp(DHCPDISCOVER);
    await h.settle();
    const offer = h.take()[0]!;
    expectFrame(offer, DHCP(DHCPOFFER));
    const leased = offer.dhcp!.yiaddr;
    const ip = [leased >>> 24, (leased >>> 16) & 255, (leased >>> 8) & 255, leased & 255].join(".");
    a.dhcp(DHCPREQUEST, { requested: ip, serverId: h.config.gateway });
    await h.settle();
    expectFrame(h.take()[0], DHCP(DHCPACK));
    await h.advance(10 * 60_000);
    h.guest(B.mac, ip).ping(h.config.gateway);
    h.guest(A.mac, ip).ping(h.config.gateway);
    await h.settle();
    const replies = h.take();
    expect(replies).toHaveLength(1);
    expect(replies[0]!.eth.dst.toString("hex")).toBe(A.mac.replaceAll(":", ""));
  });

  it("nobody claims the gateway's or the host's address, by ARP or by IP", async () => {
    h = frameHarness();
    const g = h.guest(A.mac, A.ip);
    g.arpRequest(B.ip, h.config.gateway);
    g.arpRequest(B.ip, h.config.hostAddress);
    h.guest(A.mac, h.config.hostAddress).ping(h.config.gateway);
    h.guest(A.mac, "10.9.9.9").ping(h.config.gateway);
    await h.settle();
    expect(h.take()).toHaveLength(0);
    const d = h.stack.counters().drops;
    expect(d["arp-claims-gateway"]).toBe(2);
    expect(d["ip-src-gateway"]).toBe(1);
    expect(d["ip-src-not-in-subnet"]).toBe(1);
  });

  it("with sourceGuard off, the last MAC to speak wins (a plain ARP cache)", async () => {
    h = frameHarness({ sourceGuard: false });
    h.guest(A.mac, A.ip).ping(h.config.gateway);
    h.guest(B.mac, A.ip).ping(h.config.gateway);
    await h.settle();
    expect(h.take()).toHaveLength(2);
  });
});

describe("DHCP under a DISCOVER flood", () => {
  it("600 DISCOVERs from made-up MACs leave a new guest its lease", async () => {
    h = frameHarness();
    for (let i = 0; i < 600; i++) {
      const mac = `02:ff:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
      h.guest(mac, "0.0.0.0").dhcp(DHCPDISCOVER, { xid: i });
    }
    await h.settle();
    h.take();
    const g = h.guest(A.mac, "0.0.0.0");
    g.dhcp(DHCPDISCOVER, { xid: 7 });
    await h.settle();
    const offer = h.take().find((f) => f.dhcp?.xid === 7);
    expectFrame(offer, DHCP(DHCPOFFER));
    const y = offer!.dhcp!.yiaddr;
    const ip = [y >>> 24, (y >>> 16) & 255, (y >>> 8) & 255, y & 255].join(".");
    g.dhcp(DHCPREQUEST, { xid: 7, requested: ip, serverId: h.config.gateway });
    await h.settle();
    expectFrame(
      h.take().find((f) => f.dhcp?.xid === 7),
      DHCP(DHCPACK),
    );
    expect(h.stack.leases().map((l) => l.ip)).toEqual([ip]);
  });
});

describe("per-guest limits", () => {
  it("one guest at its share of the TCP table is refused; another guest is not", async () => {
    const s = serving();
    h = frameHarness({ policy: s.policy, tcp: { maxConnectionsPerGuest: 2 } });
    const a = h.guest(A.mac, A.ip);
    const b = h.guest(B.mac, B.ip);
    for (const port of [41000, 41001, 41002]) {
      a.tcp({ dst: h.config.gateway, srcPort: port, dstPort: 53, flags: TCP_SYN, seq: 1 });
    }
    b.tcp({ dst: h.config.gateway, srcPort: 41000, dstPort: 53, flags: TCP_SYN, seq: 1 });
    await h.settle();
    const toA = h.take(A.ip);
    expect(toA.filter((f) => f.tcp!.flags === (TCP_SYN | TCP_ACK))).toHaveLength(2);
    expect(toA.filter((f) => f.tcp!.flags & TCP_RST).map((f) => f.tcp!.dstPort)).toEqual([41002]);
    expectFrame(h.take(B.ip)[0], TCP(Flags(TCP_SYN | TCP_ACK)));
    expect(h.stack.counters().drops["tcp-guest-share-full"]).toBe(1);
  });

  it("a dual-stack guest has one share of the TCP table, not one per family", async () => {
    const handled: string[] = [];
    h = frameHarness({
      tcp: { maxConnectionsPerGuest: 2 },
      policy: {
        tcp: (flow) =>
          flow.dstPort === 53
            ? { action: "handle", handler: () => handled.push(`${flow.guestIp}:${flow.guestPort}`) }
            : undefined,
      },
    });
    const gateway6 = "fdc4:f303:9324::1";
    const a = h.guest(A.mac, A.ip);
    const b = h.guest(B.mac, B.ip);
    // Two connections over IPv4, then one over IPv6 from another of its addresses: the third is over the share.
    for (const port of [44000, 44001])
      a.tcp({ dst: h.config.gateway, srcPort: port, dstPort: 53, flags: TCP_SYN, seq: 1 });
    a.tcp6("fdc4:f303:9324::a", { dst: gateway6, srcPort: 44002, dstPort: 53, flags: TCP_SYN, seq: 1 });
    b.tcp6("fdc4:f303:9324::b", { dst: gateway6, srcPort: 44000, dstPort: 53, flags: TCP_SYN, seq: 1 });
    await h.settle();
    const answers = h
      .take()
      .filter((f) => f.eth.ethertype === ETHERTYPE_IPV6)
      .map((f) => {
        const p = parseIpv6(f.eth.payload);
        const t = parseTcpWith(p.payload, addressSum6(p.src, p.dst));
        return { to: ipv6ToString(p.dst), port: t.dstPort, rst: (t.flags & TCP_RST) !== 0 };
      });
    expect(answers).toEqual([
      { to: "fdc4:f303:9324::a", port: 44002, rst: true },
      { to: "fdc4:f303:9324::b", port: 44000, rst: false },
    ]);
    expect(h.stack.counters().drops["tcp-guest-share-full"]).toBe(1);
  });

  it("one guest that used its memory budget is refused new flows; another guest is not", async () => {
    const s = serving();
    // Room for two flows of 8 KiB each way per guest.
    h = frameHarness({
      policy: s.policy,
      tcp: { initialBuffer: 8192, minBuffer: 8192, memory: { perGuestBytes: 4 * 8192 } },
    });
    const a = h.guest(A.mac, A.ip);
    for (const port of [42000, 42001, 42002]) {
      a.tcp({ dst: h.config.gateway, srcPort: port, dstPort: 53, flags: TCP_SYN, seq: 1 });
    }
    h.guest(B.mac, B.ip).tcp({ dst: h.config.gateway, srcPort: 42000, dstPort: 53, flags: TCP_SYN, seq: 1 });
    await h.settle();
    expect(h.take(A.ip).filter((f) => f.tcp!.flags & TCP_RST)).toHaveLength(1);
    expectFrame(h.take(B.ip)[0], TCP(Flags(TCP_SYN | TCP_ACK)));
    const c = h.stack.counters();
    expect(c.drops["tcp-memory-budget"]).toBe(1);
    expect(c.memory.usedBytes).toBe(6 * 8192);
  });

  it("SYNs to port 0 are reset, not dialled", async () => {
    h = frameHarness();
    h.guest(A.mac, A.ip).tcp({
      dst: h.config.hostAddress,
      srcPort: 43000,
      dstPort: 0,
      flags: TCP_SYN,
      seq: 1,
    });
    await h.settle();
    expectFrame(h.take()[0], TCP(Flags(TCP_RST | TCP_ACK)));
    expect(h.stack.counters().drops["tcp-port-zero"]).toBe(1);
  });
});

describe("receive buffer autotuning", () => {
  it("a flow that moves a whole receive grant within 100 ms gets twice the grant; a trickle does not", async () => {
    const s = serving((stream) => stream.resume());
    h = frameHarness({ policy: s.policy });
    const g = h.guest(A.mac, A.ip);
    const base = { dst: h.config.gateway, srcPort: 44000, dstPort: 53 };
    g.tcp({ ...base, flags: TCP_SYN, seq: 100, mss: 1460 });
    await h.settle();
    const ack = h.take()[0]!.tcp!.seq + 1;
    g.tcp({ ...base, flags: TCP_ACK, seq: 101, ack });
    await h.settle();
    const initial = h.stack.counters().memory.usedBytes;
    expect(initial).toBe(2 * 64 * 1024);
    let seq = 101;
    const send = (segments: number) => {
      for (let i = 0; i < segments; i++) {
        g.tcp({ ...base, flags: TCP_ACK, seq, ack, payload: Buffer.alloc(1460) });
        seq += 1460;
      }
    };
    // A trickle: 40 segments, then 101 ms, then 40 more: never a whole grant in one period.
    send(40);
    await h.settle();
    await h.advance(101);
    send(40);
    await h.settle();
    expect(h.stack.counters().memory.usedBytes).toBe(initial);
    // Then 60 KiB more within the same period: the receive grant doubles.
    send(42);
    await h.settle();
    expect(h.stack.counters().memory.usedBytes).toBe(initial + 64 * 1024);
  });
});
