/**
 * The router's IPv6 side through the whole stack, driven with frames as a hostile guest would
 * send them: what it answers (NA, RA, echo, "no route") and what it refuses, counted by reason.
 */
import { afterEach, describe, expect, it } from "vitest";
import { type FrameHarness, frameHarness } from "../../src/testing/frame-harness.js";
import { parseMac } from "../../src/wire/address.js";
import { finish, sum16 } from "../../src/wire/checksum.js";
import { ETHERTYPE_IPV6, emitEthernetHeader } from "../../src/wire/ethernet.js";
import {
  emitIcmpv6Packet,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REPLY,
  ICMPV6_ECHO_REQUEST,
  ND_NEIGHBOR_ADVERT,
  ND_NEIGHBOR_SOLICIT,
  ND_ROUTER_ADVERT,
  ND_ROUTER_SOLICIT,
  neighborAdvertBody,
  neighborSolicitBody,
  parseIcmpv6,
  parseRouterAdvert,
  routerAdvertBody,
} from "../../src/wire/icmpv6.js";
import {
  emitIpv6Header,
  ipv6ToString,
  linkLocalFromMac,
  multicastMac6,
  parseIpv6,
  parseIpv6Address,
  pseudoHeaderSum6,
  solicitedNode,
} from "../../src/wire/ipv6.js";

const MAC = parseMac("02:00:00:00:00:0b")!;
const GUEST_LL = linkLocalFromMac(MAC);
const GUEST = parseIpv6Address("fdc4:f303:9324::b")!;
const GATEWAY = parseIpv6Address("fdc4:f303:9324::1")!;
const HOST = parseIpv6Address("fdc4:f303:9324::254")!;
const ALL_ROUTERS = parseIpv6Address("ff02::2")!;

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function frame(dstMac: Buffer, packet: Buffer): Buffer {
  const f = Buffer.alloc(14 + packet.length);
  emitEthernetHeader(f, 0, dstMac, MAC, ETHERTYPE_IPV6);
  packet.copy(f, 14);
  return f;
}

/** An IPv6 packet from `src` to `dst` carrying 20 zero bytes as TCP (what the tests send to be refused). */
function tcp6Header(src: Buffer, dst: Buffer): Buffer {
  const packet = Buffer.alloc(40 + 20);
  emitIpv6Header(packet, 0, { src, dst, protocol: 6, payloadLength: 20, hopLimit: 64 });
  return packet;
}

/** The ICMPv6 messages the stack sent, parsed. */
function sent(harness: FrameHarness) {
  return harness
    .take()
    .filter((f) => f.eth.ethertype === ETHERTYPE_IPV6)
    .map((f) => {
      const p = parseIpv6(f.eth.payload);
      return { p, m: parseIcmpv6(p.payload, p.src, p.dst), dstMac: f.eth.dst };
    });
}

describe("the IPv6 router side", () => {
  it("answers a router solicitation with the prefix, the MTU and its link-local address", async () => {
    h = frameHarness();
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    const rs = emitIcmpv6Packet(
      GUEST_LL,
      ALL_ROUTERS,
      ND_ROUTER_SOLICIT,
      0,
      Buffer.concat([Buffer.alloc(4), Buffer.from([1, 1]), MAC]),
    );
    g.send(frame(multicastMac6(ALL_ROUTERS), rs));
    await h.settle();
    const [ra] = sent(h);
    expect(ra!.m.type).toBe(ND_ROUTER_ADVERT);
    expect(ipv6ToString(ra!.p.src)).toBe(h.config.ipv6!.gatewayLinkLocal);
    expect(ra!.dstMac).toEqual(MAC);
    const adv = parseRouterAdvert(ra!.m.body);
    expect(adv.mtu).toBe(1500);
    expect(`${ipv6ToString(adv.prefixes[0]!.prefix)}/64`).toBe(h.config.ipv6!.prefix);
  });

  it("advertises the gateway as DNS server when asked, and serves UDP to it through the policy", async () => {
    h = frameHarness({
      ipv6: { advertiseDns: true },
      policy: {
        udp: (flow) =>
          flow.dstIp === "fdc4:f303:9324::1" && flow.dstPort === 53
            ? {
                action: "handle",
                handler: (message, _flow, reply) => reply(Buffer.concat([Buffer.from("re:"), message])),
              }
            : undefined,
      },
    });
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    g.send(
      frame(
        multicastMac6(ALL_ROUTERS),
        emitIcmpv6Packet(GUEST_LL, ALL_ROUTERS, ND_ROUTER_SOLICIT, 0, Buffer.alloc(4)),
      ),
    );
    const udp = (port: number) => {
      const payload = Buffer.from("query");
      const packet = Buffer.alloc(40 + 8 + payload.length);
      emitIpv6Header(packet, 0, {
        src: GUEST,
        dst: GATEWAY,
        protocol: 17,
        payloadLength: 8 + payload.length,
        hopLimit: 64,
      });
      packet.writeUInt16BE(40000, 40);
      packet.writeUInt16BE(port, 42);
      packet.writeUInt16BE(8 + payload.length, 44);
      payload.copy(packet, 48);
      const sum = finish(
        pseudoHeaderSum6(GUEST, GATEWAY, 17, 8 + payload.length) + sum16(packet, 40, packet.length),
      );
      packet.writeUInt16BE(sum, 46);
      return packet;
    };
    g.send(frame(parseMac(h.config.gatewayMac)!, udp(53)));
    g.send(frame(parseMac(h.config.gatewayMac)!, udp(54)));
    await h.settle();
    const out = h
      .take()
      .filter((f) => f.eth.ethertype === ETHERTYPE_IPV6)
      .map((f) => parseIpv6(f.eth.payload));
    const ra = parseRouterAdvert(parseIcmpv6(out[0]!.payload, out[0]!.src, out[0]!.dst).body);
    expect(ra.dns!.servers.map(ipv6ToString)).toEqual(["fdc4:f303:9324::1"]);
    expect(out[1]!.protocol).toBe(17);
    expect(out[1]!.payload.subarray(8).toString()).toBe("re:query");
    expect(out[1]!.payload.readUInt16BE(2)).toBe(40000);
    const unreachable = parseIcmpv6(out[2]!.payload, out[2]!.src, out[2]!.dst);
    expect([unreachable.type, unreachable.code]).toEqual([ICMPV6_DEST_UNREACHABLE, 4]);
  });

  it("answers neighbour solicitations for the gateway and the host, and echo for both", async () => {
    h = frameHarness();
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    for (const target of [GATEWAY, HOST]) {
      g.send(
        frame(
          multicastMac6(solicitedNode(target)),
          emitIcmpv6Packet(
            GUEST,
            solicitedNode(target),
            ND_NEIGHBOR_SOLICIT,
            0,
            neighborSolicitBody(target, MAC),
          ),
        ),
      );
      g.send(
        frame(
          parseMac(h.config.gatewayMac)!,
          emitIcmpv6Packet(GUEST, target, ICMPV6_ECHO_REQUEST, 0, Buffer.from("\x12\x34\x00\x01ping"), 64),
        ),
      );
    }
    await h.settle();
    const answers = sent(h).map((x) => [x.m.type, ipv6ToString(x.p.src)]);
    expect(answers).toEqual([
      [ND_NEIGHBOR_ADVERT, "fdc4:f303:9324::1"],
      [ICMPV6_ECHO_REPLY, "fdc4:f303:9324::1"],
      [ND_NEIGHBOR_ADVERT, "fdc4:f303:9324::254"],
      [ICMPV6_ECHO_REPLY, "fdc4:f303:9324::254"],
    ]);
    expect(h.stack.counters().ipv6).toMatchObject({
      neighborSolicitationsAnswered: 2,
      echoAnswered: 2,
      neighbours: 1,
    });
  });

  it("refuses a link-local destination not its own at once with 'no route', quoting the packet", async () => {
    h = frameHarness();
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    const syn = tcp6Header(GUEST, parseIpv6Address("fe80::99")!);
    g.send(frame(parseMac(h.config.gatewayMac)!, syn));
    await h.settle();
    const [err] = sent(h);
    expect(err!.m.type).toBe(ICMPV6_DEST_UNREACHABLE);
    expect(err!.m.code).toBe(0);
    expect(err!.m.body.subarray(4)).toEqual(syn);
    expect(h.stack.counters().drops["ipv6-link-local-destination"]).toBe(1);
  });

  it("answers a link-local source talking beyond the link with 'beyond scope of source address'", async () => {
    h = frameHarness();
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    const syn = tcp6Header(GUEST_LL, HOST);
    g.send(frame(parseMac(h.config.gatewayMac)!, syn));
    await h.settle();
    const [err] = sent(h);
    expect(err!.m.type).toBe(ICMPV6_DEST_UNREACHABLE);
    expect(err!.m.code).toBe(2);
    expect(err!.p.dst).toEqual(GUEST_LL);
    expect(h.stack.counters().drops["ipv6-src-beyond-scope"]).toBe(1);
  });

  it("answers a flood of packets it must refuse with at most a burst of errors, per guest, then a bounded rate", async () => {
    h = frameHarness();
    const flooder = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    const syn = tcp6Header(GUEST, parseIpv6Address("fe80::99")!);
    for (let i = 0; i < 200; i++) flooder.send(frame(parseMac(h.config.gatewayMac)!, syn));
    await h.settle();
    expect(sent(h).filter((x) => x.m.type === ICMPV6_DEST_UNREACHABLE)).toHaveLength(50);
    expect(h.stack.counters().drops["icmpv6-error-rate-limited"]).toBe(150);
    // Another guest's share is its own.
    const other = h.guest("02:00:00:00:00:0c", "192.168.65.4");
    const otherMac = parseMac("02:00:00:00:00:0c")!;
    const otherSyn = Buffer.from(syn);
    otherSyn.set(parseIpv6Address("fdc4:f303:9324::c")!, 8);
    const f = frame(parseMac(h.config.gatewayMac)!, otherSyn);
    otherMac.copy(f, 6);
    other.send(f);
    await h.settle();
    expect(sent(h).filter((x) => x.dstMac.equals(otherMac))).toHaveLength(1);
    // A second later its bucket has refilled to the burst: 50 more.
    await h.advance(1000);
    for (let i = 0; i < 200; i++) flooder.send(frame(parseMac(h.config.gatewayMac)!, syn));
    await h.settle();
    expect(sent(h).filter((x) => x.m.type === ICMPV6_DEST_UNREACHABLE)).toHaveLength(50);
  });

  it("answers solicitations from the unspecified address to all nodes at most once every 3 s", async () => {
    h = frameHarness();
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    const rs = emitIcmpv6Packet(parseIpv6Address("::")!, ALL_ROUTERS, ND_ROUTER_SOLICIT, 0, Buffer.alloc(4));
    for (let i = 0; i < 20; i++) g.send(frame(multicastMac6(ALL_ROUTERS), rs));
    await h.settle();
    expect(sent(h).filter((x) => x.m.type === ND_ROUTER_ADVERT)).toHaveLength(1);
    expect(h.stack.counters().drops["ndp-ra-rate-limited"]).toBe(19);
    await h.advance(2999);
    g.send(frame(multicastMac6(ALL_ROUTERS), rs));
    await h.settle();
    expect(sent(h).filter((x) => x.m.type === ND_ROUTER_ADVERT)).toHaveLength(0);
    await h.advance(1);
    g.send(frame(multicastMac6(ALL_ROUTERS), rs));
    await h.settle();
    expect(sent(h).filter((x) => x.m.type === ND_ROUTER_ADVERT)).toHaveLength(1);
  });

  it("drops a guest's router advertisement, a claim on the router's addresses, and ND with a lowered hop limit", async () => {
    h = frameHarness();
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    const allNodes = parseIpv6Address("ff02::1")!;
    const ra = routerAdvertBody({ curHopLimit: 64, routerLifetime: 1800, mac: MAC, prefixes: [] });
    g.send(frame(multicastMac6(allNodes), emitIcmpv6Packet(GUEST_LL, allNodes, ND_ROUTER_ADVERT, 0, ra)));
    g.send(
      frame(
        multicastMac6(allNodes),
        emitIcmpv6Packet(GUEST_LL, allNodes, ND_NEIGHBOR_ADVERT, 0, neighborAdvertBody(GATEWAY, MAC, 0x20)),
      ),
    );
    const lowHop = emitIcmpv6Packet(
      GUEST,
      solicitedNode(GATEWAY),
      ND_NEIGHBOR_SOLICIT,
      0,
      neighborSolicitBody(GATEWAY, MAC),
      64,
    );
    g.send(frame(multicastMac6(solicitedNode(GATEWAY)), lowHop));
    await h.settle();
    expect(sent(h)).toEqual([]);
    expect(h.stack.counters().drops).toMatchObject({
      "ndp-router-advert-from-guest": 1,
      "ndp-claims-router-address": 1,
      "ndp-hop-limit": 1,
    });
  });

  it("is absent with ipv6: false, every IPv6 frame counted as a drop", async () => {
    h = frameHarness({ ipv6: false });
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    g.send(
      frame(
        parseMac(h.config.gatewayMac)!,
        emitIcmpv6Packet(GUEST, GATEWAY, ICMPV6_ECHO_REQUEST, 0, Buffer.alloc(8), 64),
      ),
    );
    await h.settle();
    expect(h.config.ipv6).toBeUndefined();
    expect(sent(h)).toEqual([]);
    expect(h.stack.counters().drops.ipv6).toBe(1);
  });
});

describe("fragments and the source guard", () => {
  /** Fragment `index` of two of a UDP datagram (port 40000 → 53, 16 bytes of "fragmented..."). */
  function udpFragment(src: Buffer, id: number, index: 0 | 1): Buffer {
    const payload = Buffer.from("fragmented query");
    const udp = Buffer.alloc(8 + payload.length);
    udp.writeUInt16BE(40000, 0);
    udp.writeUInt16BE(53, 2);
    udp.writeUInt16BE(udp.length, 4);
    payload.copy(udp, 8);
    udp.writeUInt16BE(finish(pseudoHeaderSum6(src, GATEWAY, 17, udp.length) + sum16(udp, 0, udp.length)), 6);
    // 8 bytes in the first fragment (a multiple of 8, as every fragment but the last), the rest after.
    const part = index === 0 ? udp.subarray(0, 8) : udp.subarray(8);
    const packet = Buffer.alloc(40 + 8 + part.length);
    emitIpv6Header(packet, 0, {
      src,
      dst: GATEWAY,
      protocol: 44,
      payloadLength: 8 + part.length,
      hopLimit: 64,
    });
    packet[40] = 17;
    packet.writeUInt16BE(index === 0 ? 1 : 8, 42); // offset 0 with M set; offset 8 (in 8-byte units: 1), last
    packet.writeUInt32BE(id, 44);
    part.copy(packet, 48);
    return packet;
  }

  function from(mac: Buffer, dstMac: Buffer, packet: Buffer): Buffer {
    const f = Buffer.alloc(14 + packet.length);
    emitEthernetHeader(f, 0, dstMac, mac, ETHERTYPE_IPV6);
    packet.copy(f, 14);
    return f;
  }

  it("checks a fragment's source before it takes room: spoofed floods cannot evict another guest's datagram", async () => {
    h = frameHarness({
      policy: {
        udp: (flow) =>
          flow.dstPort === 53
            ? {
                action: "handle",
                handler: (message, _flow, reply) => reply(Buffer.concat([Buffer.from("re:"), message])),
              }
            : undefined,
      },
    });
    const gatewayMac = parseMac(h.config.gatewayMac)!;
    const honest = parseMac("02:00:00:00:00:0c")!;
    const g = h.guest("02:00:00:00:00:0b", "192.168.65.3");
    const other = h.guest("02:00:00:00:00:0c", "192.168.65.4");
    const HONEST = parseIpv6Address("fdc4:f303:9324::c")!;
    // The honest guest's first fragment waits for its second...
    other.send(from(honest, gatewayMac, udpFragment(HONEST, 7, 0)));
    // ...while another guest sends 100 first fragments from addresses outside the prefix, and 100
    // claiming the honest guest's address: more than the 64 datagrams reassembly holds.
    for (let i = 0; i < 100; i++) {
      g.send(frame(gatewayMac, udpFragment(parseIpv6Address(`2001:db8::${i + 1}`)!, 1000 + i, 0)));
      g.send(frame(gatewayMac, udpFragment(HONEST, 2000 + i, 0)));
    }
    other.send(from(honest, gatewayMac, udpFragment(HONEST, 7, 1)));
    await h.settle();
    const answers = h
      .take()
      .filter((f) => f.eth.ethertype === ETHERTYPE_IPV6)
      .map((f) => parseIpv6(f.eth.payload))
      .filter((p) => p.protocol === 17);
    expect(answers.map((p) => [ipv6ToString(p.dst), p.payload.subarray(8).toString()])).toEqual([
      ["fdc4:f303:9324::c", "re:fragmented query"],
    ]);
    const { drops } = h.stack.counters();
    expect(drops["ipv6-src-not-in-prefix"]).toBe(100);
    expect(drops["ipv6-src-spoofed"]).toBe(100);
    expect(drops["reassembly6-limit"]).toBeUndefined();
  });
});
