import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { WireError } from "../../src/errors.js";
import {
  emitIcmpv6Error,
  emitIcmpv6Packet,
  ICMPV6_DEST_UNREACHABLE,
  ICMPV6_ECHO_REQUEST,
  linkLayerOption,
  ND_NEIGHBOR_ADVERT,
  ND_NEIGHBOR_SOLICIT,
  ND_ROUTER_ADVERT,
  ND_ROUTER_SOLICIT,
  neighborAdvertBody,
  OPT_SOURCE_LL,
  OPT_TARGET_LL,
  parseIcmpv6,
  parseNeighborMessage,
  parseRouterAdvert,
  parseRouterSolicit,
  routerAdvertBody,
} from "../../src/wire/icmpv6.js";
import {
  ipv6ToString,
  linkLocalFromMac,
  MAX_EXTENSION_HEADERS,
  multicastMac6,
  NEXT_FRAGMENT,
  NEXT_HOP_BY_HOP,
  NEXT_ICMPV6,
  NEXT_TCP,
  parseIpv6,
  parseIpv6Address,
  solicitedNode,
} from "../../src/wire/ipv6.js";
import { ipv6Frame } from "../fixtures/ipv6.js";

const FUZZ = Number(process.env.FUZZ_SCALE ?? 1);
const ip = (frame: Buffer) => parseIpv6(frame.subarray(14));
const GUEST_MAC = Buffer.from("02000000000b", "hex");

describe("parseIpv6 on real frames", () => {
  it("walks a hop-by-hop header to the MLD report behind it", () => {
    const p = ip(ipv6Frame("mldReportHopByHop"));
    expect(p.protocol).toBe(NEXT_ICMPV6);
    expect(p.headerLength).toBe(48);
    expect(ipv6ToString(p.dst)).toBe("ff02::16");
    expect(p.hopLimit).toBe(1);
  });

  it("reads a fragment header", () => {
    const first = ip(ipv6Frame("fragmentFirst"));
    const last = ip(ipv6Frame("fragmentLast"));
    expect(first.fragment).toMatchObject({ offset: 0, more: true });
    expect(last.fragment).toMatchObject({ offset: 1448, more: false });
    expect(first.fragment!.id).toBe(last.fragment!.id);
    expect(first.protocol).toBe(NEXT_ICMPV6);
  });

  it("reads TCP and echo, addresses in RFC 5952 text", () => {
    const syn = ip(ipv6Frame("tcpSyn"));
    expect(syn.protocol).toBe(NEXT_TCP);
    expect(ipv6ToString(syn.src)).toBe("fd00::b");
    const echo = ip(ipv6Frame("echoRequestLinkLocal"));
    const m = parseIcmpv6(echo.payload, echo.src, echo.dst);
    expect(m.type).toBe(ICMPV6_ECHO_REQUEST);
    expect(ipv6ToString(echo.src)).toBe("fe80::ff:fe00:b");
  });

  it("refuses truncated packets, a wrong version, over-long extension chains, hop-by-hop not first", () => {
    const syn = ipv6Frame("tcpSyn").subarray(14);
    expect(() => parseIpv6(syn.subarray(0, 39))).toThrow(WireError);
    expect(() => parseIpv6(syn.subarray(0, syn.length - 1))).toThrow(/truncated/);
    const v4 = Buffer.from(syn);
    v4[0] = 0x45;
    expect(() => parseIpv6(v4)).toThrow(/version/);
    // A chain of destination-options headers, one more than the walk allows.
    const n = MAX_EXTENSION_HEADERS + 1;
    const chain = Buffer.alloc(40 + 8 * n);
    chain.writeUInt32BE(0x60000000, 0);
    chain.writeUInt16BE(8 * n, 4);
    chain[6] = 60;
    for (let i = 0; i < n; i++) chain[40 + 8 * i] = i === n - 1 ? 59 : 60;
    expect(() => parseIpv6(chain)).toThrow(/extension-chain/);
    const late = Buffer.from(chain);
    late[40] = NEXT_HOP_BY_HOP;
    expect(() => parseIpv6(late)).toThrow(/hop-by-hop-not-first/);
    const twoFragments = Buffer.from(chain.subarray(0, 56));
    twoFragments.writeUInt16BE(16, 4);
    twoFragments[6] = NEXT_FRAGMENT;
    twoFragments[40] = NEXT_FRAGMENT;
    expect(() => parseIpv6(twoFragments)).toThrow(/two-fragment-headers/);
  });

  it("never throws anything but WireError, nor reads past the packet", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), (bytes) => {
        const b = Buffer.from(bytes);
        if (b.length > 0) b[0] = (b[0]! & 0x0f) | 0x60;
        try {
          const p = parseIpv6(b);
          expect(p.headerLength + p.payload.length).toBeLessThanOrEqual(b.length);
        } catch (error) {
          expect(WireError.isInstance(error)).toBe(true);
        }
      }),
      { numRuns: 5000 * FUZZ },
    );
  });
});

describe("neighbour discovery on real frames", () => {
  it("reads a DAD solicitation (from ::, no link-layer option) and an ordinary one", () => {
    const dad = ip(ipv6Frame("nsDad"));
    const m = parseIcmpv6(dad.payload, dad.src, dad.dst);
    expect(m.type).toBe(ND_NEIGHBOR_SOLICIT);
    const ns = parseNeighborMessage(m.body);
    expect(ipv6ToString(ns.target)).toBe("fe80::ff:fe00:a");
    expect(linkLayerOption(ns.options, OPT_SOURCE_LL)).toBeUndefined();
    const ula = ip(ipv6Frame("nsUla"));
    const n2 = parseNeighborMessage(parseIcmpv6(ula.payload, ula.src, ula.dst).body);
    expect(ipv6ToString(n2.target)).toBe("fd00::a");
    expect(linkLayerOption(n2.options, OPT_SOURCE_LL)).toEqual(GUEST_MAC);
    expect(ipv6ToString(ula.dst)).toBe(ipv6ToString(solicitedNode(n2.target)));
    expect(ipv6Frame("nsUla").subarray(0, 6)).toEqual(multicastMac6(ula.dst));
  });

  it("reads an advertisement and a router solicitation", () => {
    const na = ip(ipv6Frame("naSolicited"));
    const m = parseIcmpv6(na.payload, na.src, na.dst);
    expect(m.type).toBe(ND_NEIGHBOR_ADVERT);
    const adv = parseNeighborMessage(m.body);
    expect(linkLayerOption(adv.options, OPT_TARGET_LL)).toEqual(Buffer.from("02000000000a", "hex"));
    const rs = ip(ipv6Frame("routerSolicitation"));
    const r = parseIcmpv6(rs.payload, rs.src, rs.dst);
    expect(r.type).toBe(ND_ROUTER_SOLICIT);
    expect(linkLayerOption(parseRouterSolicit(r.body), OPT_SOURCE_LL)).toEqual(
      Buffer.from("02000000000a", "hex"),
    );
  });

  it("derives the guest's link-local address from its MAC, as the kernel did", () => {
    expect(ipv6ToString(linkLocalFromMac(GUEST_MAC))).toBe("fe80::ff:fe00:b");
  });

  it("round-trips what the router sends: NA, RA with prefix, MTU and RDNSS, errors", () => {
    const gw = parseIpv6Address("fdc4:f303:9324::1")!;
    const guest = parseIpv6Address("fdc4:f303:9324::3")!;
    const na = emitIcmpv6Packet(gw, guest, ND_NEIGHBOR_ADVERT, 0, neighborAdvertBody(gw, GUEST_MAC, 0xe0));
    const p = parseIpv6(na);
    expect(parseNeighborMessage(parseIcmpv6(p.payload, p.src, p.dst).body).flags).toBe(0xe0);
    const ra = routerAdvertBody({
      curHopLimit: 64,
      routerLifetime: 1800,
      mac: GUEST_MAC,
      mtu: 1500,
      prefixes: [
        {
          prefix: parseIpv6Address("fdc4:f303:9324::")!,
          length: 64,
          validLifetime: 86400,
          preferredLifetime: 14400,
          autonomous: true,
          onLink: true,
        },
      ],
      dns: { servers: [gw], lifetime: 600 },
    });
    const raPacket = parseIpv6(emitIcmpv6Packet(gw, parseIpv6Address("ff02::1")!, ND_ROUTER_ADVERT, 0, ra));
    const parsed = parseRouterAdvert(parseIcmpv6(raPacket.payload, raPacket.src, raPacket.dst).body);
    expect(parsed).toMatchObject({ curHopLimit: 64, routerLifetime: 1800, mtu: 1500 });
    expect(ipv6ToString(parsed.prefixes[0]!.prefix)).toBe("fdc4:f303:9324::");
    expect(parsed.dns!.servers.map(ipv6ToString)).toEqual(["fdc4:f303:9324::1"]);
    const offending = ipv6Frame("tcpSyn").subarray(14);
    const err = parseIpv6(emitIcmpv6Error(gw, guest, ICMPV6_DEST_UNREACHABLE, 1, offending));
    const e = parseIcmpv6(err.payload, err.src, err.dst);
    expect(e.type).toBe(ICMPV6_DEST_UNREACHABLE);
    expect(e.body.subarray(4)).toEqual(offending);
  });

  it("refuses a corrupted checksum and malformed options", () => {
    const ns = ip(Buffer.from(ipv6Frame("nsUla")));
    ns.payload[10] = ns.payload[10]! ^ 1;
    expect(() => parseIcmpv6(ns.payload, ns.src, ns.dst)).toThrow(/checksum/);
    const zero = Buffer.alloc(28);
    zero[20] = OPT_SOURCE_LL;
    expect(() => parseNeighborMessage(zero)).toThrow(/option-zero-length/);
  });

  it("parses addresses and prints them back", () => {
    for (const text of ["::", "::1", "fe80::ff:fe00:b", "fdc4:f303:9324::254", "1:2:3:4:5:6:7:8", "1::8"]) {
      expect(ipv6ToString(parseIpv6Address(text)!)).toBe(text);
    }
    for (const bad of ["1:2:3:4:5:6:7:8:9", "1::2::3", "12345::", "g::", "1.2.3.4", ""]) {
      expect(parseIpv6Address(bad)).toBeUndefined();
    }
  });
});
