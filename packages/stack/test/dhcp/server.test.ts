import { ManualClock } from "@desktopd/core";
import { describe, expect, it } from "vitest";
import { DhcpServer, type DhcpServerOptions } from "../../src/dhcp/index.js";
import { ConfigError } from "../../src/errors.js";
import { macToString, parseIpv4Address, parseMac } from "../../src/wire/address.js";
import {
  BOOTREPLY,
  BOOTREQUEST,
  DHCPACK,
  DHCPDECLINE,
  DHCPDISCOVER,
  DHCPINFORM,
  DHCPNAK,
  DHCPOFFER,
  DHCPREQUEST,
  type DhcpMessage,
  decodeDomainSearch,
  emitDhcp,
  OPT_DOMAIN_SEARCH,
  OPT_LEASE_TIME,
  OPT_MESSAGE,
  OPT_REQUESTED_IP,
  OPT_SERVER_ID,
  optionString,
  optionU32,
  parameterRequestList,
  parseDhcp,
  requestedHostname,
  serverIdentifier,
} from "../../src/wire/dhcp.js";
import * as cap from "../fixtures/dhcp.js";

const ip = (s: string) => parseIpv4Address(s)!;
const real = (f: Buffer) => parseDhcp(cap.dhcpPayload(f));
const OTHER_MAC = "02:00:00:00:00:aa";
const THIRD_MAC = "02:00:00:00:00:bb";
const HOUR = 3_600_000;

/** The configuration dnsmasq ran with in the capture, with the pool starting at its pick. */
function setup(extra: Partial<DhcpServerOptions> = {}) {
  const clock = new ManualClock(1_000);
  const server = new DhcpServer({
    serverIp: cap.SERVER_IP,
    subnetMask: ip("255.255.255.0"),
    router: cap.SERVER_IP,
    dnsServers: [cap.SERVER_IP],
    searchDomains: ["home.arpa", "example.test"],
    mtu: 1400,
    poolStart: cap.LEASED_IP,
    poolEnd: ip("10.77.0.60"),
    clock,
    ...extra,
  });
  return { clock, server };
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v);
  return b;
}

/** A client message built with our encoder, for cases udhcpc does not produce. */
function client(
  type: number,
  mac: string,
  o: {
    requested?: number;
    serverId?: number;
    ciaddr?: number;
    broadcast?: boolean;
    extra?: [number, Buffer][];
  } = {},
): DhcpMessage {
  const extraOptions: [number, Buffer][] = [...(o.extra ?? [])];
  if (o.requested !== undefined) extraOptions.push([OPT_REQUESTED_IP, u32(o.requested)]);
  if (o.serverId !== undefined) extraOptions.push([OPT_SERVER_ID, u32(o.serverId)]);
  return parseDhcp(
    emitDhcp({
      op: BOOTREQUEST,
      messageType: type,
      xid: 0x1234,
      chaddr: parseMac(mac)!,
      ciaddr: o.ciaddr,
      broadcast: o.broadcast,
      extraOptions,
    }),
  );
}

/** Discover and select, as a client would; returns the address acknowledged. */
function lease(server: DhcpServer, mac: string): number {
  const offer = parseDhcp(server.handle(client(DHCPDISCOVER, mac))!.message);
  const ack = parseDhcp(
    server.handle(client(DHCPREQUEST, mac, { requested: offer.yiaddr, serverId: cap.SERVER_IP }))!.message,
  );
  expect(ack.messageType).toBe(DHCPACK);
  return ack.yiaddr;
}

function answer(server: DhcpServer, msg: DhcpMessage): DhcpMessage {
  const reply = server.handle(msg);
  expect(reply).toBeDefined();
  return parseDhcp(reply!.message);
}

describe("DhcpServer answering captured udhcpc messages", () => {
  it("DISCOVER → OFFER with the options udhcpc asked for, valued as dnsmasq valued them", () => {
    const { server } = setup();
    const discover = real(cap.discover);
    const reply = server.handle(discover)!;
    expect(reply.broadcast).toBe(true);
    expect(reply.dstIp).toBe(0xffffffff);
    expect(macToString(reply.dstMac)).toBe("ff:ff:ff:ff:ff:ff");
    expect(reply.message.length).toBeGreaterThanOrEqual(300);
    const ours = parseDhcp(reply.message);
    const dnsmasq = real(cap.offer);
    expect(ours).toMatchObject({
      op: BOOTREPLY,
      xid: cap.XID,
      messageType: DHCPOFFER,
      yiaddr: cap.LEASED_IP,
    });
    expect(ours.chaddr.equals(discover.chaddr)).toBe(true);
    // Every option dnsmasq sent (lease, T1, T2, mask, broadcast, MTU, search, DNS, router, server id).
    for (const [code, value] of dnsmasq.options) {
      expect(ours.options.get(code)?.toString("hex"), `option ${code}`).toBe(value.toString("hex"));
    }
    expect(decodeDomainSearch(ours.options.get(OPT_DOMAIN_SEARCH)!)).toEqual(["home.arpa", "example.test"]);
    expect(optionString(ours, 15)).toBe("home.arpa");
    expect(requestedHostname(ours)).toBe("guest1");
    // Each option udhcpc requested that we have configured is present.
    for (const code of parameterRequestList(discover).filter((c) => c !== 42)) {
      expect(ours.options.has(code), `option ${code}`).toBe(true);
    }
    expect(server.stats.offers).toBe(1);
    expect(server.leases()).toEqual([]);
  });

  it("REQUEST (selecting) → ACK and a lease; renewal extends it by unicast", () => {
    const { clock, server } = setup();
    server.handle(real(cap.discover));
    const ack = answer(server, real(cap.request));
    expect(ack).toMatchObject({ messageType: DHCPACK, xid: cap.XID, yiaddr: cap.LEASED_IP, ciaddr: 0 });
    for (const [code, value] of real(cap.ack).options) {
      expect(ack.options.get(code)?.toString("hex"), `option ${code}`).toBe(value.toString("hex"));
    }
    expect(server.leases()).toEqual([
      { mac: cap.CLIENT_MAC, ip: cap.LEASED_IP, hostname: "guest1", expiresAt: 1_000 + HOUR, static: false },
    ]);

    clock.advance(HOUR / 2);
    const reply = server.handle(real(cap.renewRequest))!;
    expect(reply).toMatchObject({ broadcast: false, dstIp: cap.LEASED_IP });
    expect(macToString(reply.dstMac)).toBe(cap.CLIENT_MAC);
    const renewed = parseDhcp(reply.message);
    expect(renewed).toMatchObject({ messageType: DHCPACK, ciaddr: cap.LEASED_IP, yiaddr: cap.LEASED_IP });
    expect(server.leases()[0]!.expiresAt).toBe(1_000 + HOUR / 2 + HOUR);
    expect(server.stats.acks).toBe(2);
  });

  it("broadcast-flag exchange is answered by broadcast", () => {
    const { server } = setup();
    const offer = server.handle(real(cap.broadcastDiscover))!;
    expect(offer.broadcast).toBe(true);
    expect(parseDhcp(offer.message).broadcast).toBe(true);
    // The client sent no parameter list: no search list, the rest as configured.
    expect(parseDhcp(offer.message).options.has(OPT_DOMAIN_SEARCH)).toBe(false);
    const ack = server.handle(real(cap.broadcastRequest))!;
    expect(ack.broadcast).toBe(true);
    expect(parseDhcp(ack.message).yiaddr).toBe(cap.LEASED_IP);
  });

  it("RELEASE ends the lease but the MAC gets the same address back", () => {
    const { server } = setup();
    server.handle(real(cap.discover));
    server.handle(real(cap.request));
    expect(server.handle(real(cap.release))).toBeUndefined();
    expect(server.stats.releases).toBe(1);
    expect(server.leases()).toEqual([]);
    expect(lease(server, OTHER_MAC)).toBe(ip("10.77.0.57"));
    expect(answer(server, real(cap.discover)).yiaddr).toBe(cap.LEASED_IP);
    // A second release of the same lease is not counted again.
    server.handle(real(cap.release));
    expect(server.stats.releases).toBe(1);
  });

  it("ignores a REQUEST for another server's id and frees its offer", () => {
    const { server } = setup({ poolEnd: cap.LEASED_IP });
    server.handle(real(cap.discover));
    const chosenElsewhere = client(DHCPREQUEST, cap.CLIENT_MAC, {
      requested: cap.LEASED_IP,
      serverId: ip("10.77.0.2"),
    });
    expect(server.handle(chosenElsewhere)).toBeUndefined();
    expect(server.stats.drops["other-server"]).toBe(1);
    // The one-address pool is free again for someone else.
    expect(lease(server, OTHER_MAC)).toBe(cap.LEASED_IP);
  });
});

describe("DhcpServer lease logic", () => {
  it("keeps a MAC's address after expiry while nobody else took it", () => {
    const { clock, server } = setup();
    expect(lease(server, cap.CLIENT_MAC)).toBe(cap.LEASED_IP);
    clock.advance(HOUR);
    expect(server.leases()).toEqual([]);
    // Fresh addresses go to newcomers before a lapsed one is reused.
    expect(lease(server, OTHER_MAC)).toBe(ip("10.77.0.57"));
    // Renewing after expiry still succeeds.
    expect(answer(server, real(cap.renewRequest)).messageType).toBe(DHCPACK);
    expect(server.leases().map((l) => l.ip)).toContain(cap.LEASED_IP);
  });

  it("reuses the longest-lapsed address when the pool has no fresh one, and NAKs its old owner", () => {
    const { clock, server } = setup({ poolEnd: ip("10.77.0.57") });
    expect(lease(server, cap.CLIENT_MAC)).toBe(cap.LEASED_IP);
    expect(lease(server, OTHER_MAC)).toBe(ip("10.77.0.57"));
    clock.advance(2 * HOUR);
    lease(server, OTHER_MAC); // renewed, still .57
    expect(lease(server, THIRD_MAC)).toBe(cap.LEASED_IP);
    const nak = server.handle(real(cap.renewRequest))!;
    expect(parseDhcp(nak.message).messageType).toBe(DHCPNAK);
    expect(nak.broadcast).toBe(true);
    expect(server.stats.naks).toBe(1);
  });

  it("exhausts the pool gracefully: no OFFER, counted", () => {
    const { server } = setup({ poolEnd: ip("10.77.0.57") });
    lease(server, cap.CLIENT_MAC);
    lease(server, OTHER_MAC);
    expect(server.handle(client(DHCPDISCOVER, THIRD_MAC))).toBeUndefined();
    expect(server.stats.drops["pool-exhausted"]).toBe(1);
    expect(server.stats.offers).toBe(2);
  });

  it("offers a free address before lending one offered to another client", () => {
    const { server } = setup({ poolEnd: ip("10.77.0.57") });
    expect(answer(server, client(DHCPDISCOVER, cap.CLIENT_MAC)).yiaddr).toBe(cap.LEASED_IP);
    expect(answer(server, client(DHCPDISCOVER, OTHER_MAC)).yiaddr).toBe(ip("10.77.0.57"));
  });

  it("with the pool dry, lends the oldest unrequested offer; the first REQUEST wins", () => {
    const { server } = setup({ poolEnd: cap.LEASED_IP });
    expect(answer(server, client(DHCPDISCOVER, cap.CLIENT_MAC)).yiaddr).toBe(cap.LEASED_IP);
    expect(answer(server, client(DHCPDISCOVER, OTHER_MAC)).yiaddr).toBe(cap.LEASED_IP);
    const select = (mac: string) =>
      client(DHCPREQUEST, mac, { requested: cap.LEASED_IP, serverId: cap.SERVER_IP });
    expect(answer(server, select(cap.CLIENT_MAC)).messageType).toBe(DHCPACK);
    expect(answer(server, select(OTHER_MAC)).messageType).toBe(DHCPNAK);
    // Bound now: not lent to anyone.
    expect(server.handle(client(DHCPDISCOVER, OTHER_MAC))).toBeUndefined();
  });

  it("releases an offer nobody requested after offerHoldSeconds", () => {
    const { clock, server } = setup({ poolEnd: cap.LEASED_IP, offerHoldSeconds: 5 });
    server.handle(client(DHCPDISCOVER, cap.CLIENT_MAC));
    expect(server.ownerOf(cap.LEASED_IP)).toBeUndefined();
    clock.advance(5_000);
    expect(answer(server, client(DHCPDISCOVER, OTHER_MAC)).yiaddr).toBe(cap.LEASED_IP);
  });

  it("INFORM from an address outside the subnet or of the server is dropped", () => {
    const { server } = setup();
    expect(server.handle(client(DHCPINFORM, cap.CLIENT_MAC, { ciaddr: ip("10.99.0.9") }))).toBeUndefined();
    expect(server.handle(client(DHCPINFORM, cap.CLIENT_MAC, { ciaddr: cap.SERVER_IP }))).toBeUndefined();
    expect(server.stats.drops["inform-wrong-network"]).toBe(2);
  });

  it("skips reserved, router and DNS addresses", () => {
    const { server } = setup({
      router: cap.LEASED_IP,
      dnsServers: [ip("10.77.0.57")],
      reserved: [ip("10.77.0.58")],
    });
    expect(lease(server, cap.CLIENT_MAC)).toBe(ip("10.77.0.59"));
  });

  it("NAKs an address outside the subnet, with a reason, by broadcast", () => {
    const { server } = setup();
    const initReboot = client(DHCPREQUEST, cap.CLIENT_MAC, { requested: ip("192.168.1.20") });
    const reply = server.handle(initReboot)!;
    expect(reply).toMatchObject({ broadcast: true, dstIp: 0xffffffff });
    const nak = parseDhcp(reply.message);
    expect(nak).toMatchObject({ messageType: DHCPNAK, yiaddr: 0, xid: 0x1234 });
    expect(serverIdentifier(nak)).toBe(cap.SERVER_IP);
    expect(nak.options.has(OPT_LEASE_TIME)).toBe(false);
    expect(optionString(nak, OPT_MESSAGE)).toBe("wrong network");
  });

  it("NAKs an address another client holds, and the network and broadcast addresses", () => {
    const { server } = setup();
    lease(server, OTHER_MAC);
    for (const asked of [cap.LEASED_IP, ip("10.77.0.0"), ip("10.77.0.255")]) {
      const nak = answer(
        server,
        client(DHCPREQUEST, cap.CLIENT_MAC, { requested: asked, serverId: cap.SERVER_IP }),
      );
      expect(nak.messageType).toBe(DHCPNAK);
    }
    // Renewing an address that is not ours.
    expect(answer(server, client(DHCPREQUEST, cap.CLIENT_MAC, { ciaddr: cap.LEASED_IP })).messageType).toBe(
      DHCPNAK,
    );
    expect(server.stats.naks).toBe(4);
  });

  it("INIT-REBOOT: grants a free pool address the client remembers, NAKs one outside the pool", () => {
    const { server } = setup();
    const reboot = answer(server, client(DHCPREQUEST, cap.CLIENT_MAC, { requested: ip("10.77.0.58") }));
    expect(reboot).toMatchObject({ messageType: DHCPACK, yiaddr: ip("10.77.0.58") });
    const outside = answer(server, client(DHCPREQUEST, OTHER_MAC, { requested: ip("10.77.0.20") }));
    expect(outside.messageType).toBe(DHCPNAK);
    expect(optionString(outside, OPT_MESSAGE)).toBe("address not available");
  });

  it("a DISCOVER asking for a specific free address gets it", () => {
    const { server } = setup();
    const offer = answer(server, client(DHCPDISCOVER, cap.CLIENT_MAC, { requested: ip("10.77.0.59") }));
    expect(offer.yiaddr).toBe(ip("10.77.0.59"));
  });

  it("DECLINE keeps the address out of the pool for a while", () => {
    const { clock, server } = setup({ poolEnd: ip("10.77.0.57"), declineHoldSeconds: 600 });
    expect(lease(server, cap.CLIENT_MAC)).toBe(cap.LEASED_IP);
    const decline = client(DHCPDECLINE, cap.CLIENT_MAC, {
      requested: cap.LEASED_IP,
      serverId: cap.SERVER_IP,
    });
    expect(server.handle(decline)).toBeUndefined();
    expect(server.stats.declines).toBe(1);
    expect(server.leases()).toEqual([]);
    expect(lease(server, cap.CLIENT_MAC)).toBe(ip("10.77.0.57"));
    expect(server.handle(client(DHCPDISCOVER, OTHER_MAC))).toBeUndefined();
    clock.advance(600_000);
    expect(answer(server, client(DHCPDISCOVER, OTHER_MAC)).yiaddr).toBe(cap.LEASED_IP);
  });

  it("INFORM → ACK with configuration only, unicast to the client", () => {
    const { server } = setup();
    const reply = server.handle(client(DHCPINFORM, cap.CLIENT_MAC, { ciaddr: ip("10.77.0.9") }))!;
    expect(reply).toMatchObject({ broadcast: false, dstIp: ip("10.77.0.9") });
    const ack = parseDhcp(reply.message);
    expect(ack).toMatchObject({ messageType: DHCPACK, yiaddr: 0, ciaddr: ip("10.77.0.9") });
    expect(ack.options.has(OPT_LEASE_TIME)).toBe(false);
    expect(optionU32(ack, 1)).toBe(ip("255.255.255.0"));
    expect(server.leases()).toEqual([]);
  });

  it("leases expire on the injected clock", () => {
    const { clock, server } = setup({ leaseTimeSeconds: 120 });
    lease(server, cap.CLIENT_MAC);
    clock.advance(119_999);
    expect(server.leases()).toHaveLength(1);
    clock.advance(1);
    expect(server.leases()).toHaveLength(0);
  });

  it("drops what is not a client DHCP message", () => {
    const { server } = setup();
    expect(server.handle(real(cap.offer))).toBeUndefined();
    const bootp = parseDhcp(
      emitDhcp({ op: BOOTREQUEST, messageType: DHCPDISCOVER, xid: 1, chaddr: Buffer.alloc(6) }),
    );
    bootp.messageType = undefined;
    expect(server.handle(bootp)).toBeUndefined();
    const relayed = client(DHCPDISCOVER, cap.CLIENT_MAC);
    relayed.giaddr = ip("10.1.0.1");
    expect(server.handle(relayed)).toBeUndefined();
    expect(server.handle(client(DHCPREQUEST, cap.CLIENT_MAC))).toBeUndefined();
    expect(server.stats.drops).toEqual({ "not-request": 1, bootp: 1, relayed: 1, malformed: 1 });
  });

  it("drops the search list and hostname when the reply would exceed the client's maximum size", () => {
    const domains = Array.from({ length: 12 }, (_, i) => `zone${i}.subdomain.example.test`);
    const { server } = setup({ searchDomains: domains });
    const small = server.handle(real(cap.discover))!.message; // udhcpc: max 576
    expect(small.length).toBeLessThanOrEqual(548);
    expect(parseDhcp(small).options.has(OPT_DOMAIN_SEARCH)).toBe(false);
    const bigEnough = client(DHCPDISCOVER, OTHER_MAC, {
      extra: [
        [55, Buffer.of(1, 3, 6, 119)],
        [57, Buffer.of(0x05, 0xdc)],
      ],
    });
    const big = parseDhcp(server.handle(bigEnough)!.message);
    expect(decodeDomainSearch(big.options.get(OPT_DOMAIN_SEARCH)!)).toEqual(domains);
  });
});

describe("DhcpServer static leases", () => {
  it("gives a reserved MAC its address and hostname, and NAKs it any other", () => {
    const fixed = ip("10.77.0.10");
    const { server } = setup({ staticLeases: [{ mac: "02-00-00-00-00-02", ip: fixed, hostname: "fixed" }] });
    const offer = answer(server, real(cap.discover));
    expect(offer.yiaddr).toBe(fixed);
    expect(requestedHostname(offer)).toBe("fixed");
    // udhcpc's captured REQUEST asks for .56, which is not this MAC's.
    expect(answer(server, real(cap.request)).messageType).toBe(DHCPNAK);
    const ack = answer(
      server,
      client(DHCPREQUEST, cap.CLIENT_MAC, { requested: fixed, serverId: cap.SERVER_IP }),
    );
    expect(ack.yiaddr).toBe(fixed);
    expect(server.leases()).toEqual([
      { mac: cap.CLIENT_MAC, ip: fixed, hostname: "fixed", expiresAt: 1_000 + HOUR, static: true },
    ]);
  });

  it("a reservation inside the pool is never handed to another MAC, even unbound", () => {
    const { server } = setup({ poolEnd: ip("10.77.0.57") });
    server.addStaticLease(THIRD_MAC, cap.LEASED_IP);
    expect(lease(server, cap.CLIENT_MAC)).toBe(ip("10.77.0.57"));
    expect(server.handle(client(DHCPDISCOVER, OTHER_MAC))).toBeUndefined();
  });

  it("reserving an address another MAC leased takes it away at the next renewal", () => {
    const { server } = setup();
    expect(lease(server, cap.CLIENT_MAC)).toBe(cap.LEASED_IP);
    server.addStaticLease(OTHER_MAC, cap.LEASED_IP, "vm");
    expect(answer(server, real(cap.renewRequest)).messageType).toBe(DHCPNAK);
    expect(answer(server, client(DHCPDISCOVER, cap.CLIENT_MAC)).yiaddr).toBe(ip("10.77.0.57"));
    expect(answer(server, client(DHCPDISCOVER, OTHER_MAC)).yiaddr).toBe(cap.LEASED_IP);
  });

  it("rejects reservations that cannot work", () => {
    const { server } = setup();
    server.addStaticLease(OTHER_MAC, ip("10.77.0.10"));
    expect(() => server.addStaticLease(THIRD_MAC, ip("10.77.0.10"))).toThrow(ConfigError);
    expect(() => server.addStaticLease(THIRD_MAC, ip("10.78.0.10"))).toThrow(ConfigError);
    expect(() => server.addStaticLease(THIRD_MAC, cap.SERVER_IP)).toThrow(ConfigError);
    expect(() => server.addStaticLease("nonsense", ip("10.77.0.11"))).toThrow(ConfigError);
  });
});

describe("DhcpServer configuration", () => {
  it.each([
    ["a pool outside the subnet", { poolStart: ip("10.78.0.1") }],
    ["a reversed pool", { poolStart: ip("10.77.0.60"), poolEnd: ip("10.77.0.50") }],
    ["a non-contiguous mask", { subnetMask: ip("255.0.255.0") }],
    ["a bad search domain", { searchDomains: ["bad..domain"] }],
    ["a tiny MTU", { mtu: 40 }],
    ["a zero lease time", { leaseTimeSeconds: 0 }],
  ] as const)("rejects %s", (_, bad) => {
    let error: unknown;
    try {
      setup(bad as Partial<DhcpServerOptions>);
    } catch (e) {
      error = e;
    }
    expect(ConfigError.isInstance(error)).toBe(true);
  });
});
