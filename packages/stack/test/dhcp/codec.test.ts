import { describe, expect, it } from "vitest";
import { WireError } from "../../src/errors.js";
import { macToString, parseIpv4Address } from "../../src/wire/address.js";
import {
  BOOTREQUEST,
  clientIdentifier,
  DHCPACK,
  DHCPDISCOVER,
  DHCPOFFER,
  DHCPRELEASE,
  DHCPREQUEST,
  decodeDomainSearch,
  emitDhcp,
  encodeDomainSearch,
  formatDhcp,
  maxMessageSize,
  OPT_DOMAIN_SEARCH,
  OPT_LEASE_TIME,
  OPT_MTU,
  OPT_REBINDING_TIME,
  OPT_RENEWAL_TIME,
  OPT_SUBNET_MASK,
  optionIpv4List,
  optionString,
  optionU16,
  optionU32,
  parameterRequestList,
  parseDhcp,
  requestedHostname,
  requestedIp,
  serverIdentifier,
} from "../../src/wire/dhcp.js";
import * as cap from "../fixtures/dhcp.js";

const ip = (s: string) => parseIpv4Address(s)!;
const payload = (f: Buffer) => Buffer.from(cap.dhcpPayload(f));
const all = {
  discover: cap.discover,
  offer: cap.offer,
  request: cap.request,
  ack: cap.ack,
  renewRequest: cap.renewRequest,
  renewAck: cap.renewAck,
  release: cap.release,
  broadcastDiscover: cap.broadcastDiscover,
  broadcastOffer: cap.broadcastOffer,
  broadcastRequest: cap.broadcastRequest,
  broadcastAck: cap.broadcastAck,
};

function wireReason(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (WireError.isInstance(e) && e.layer === "dhcp") return e.reason;
    throw e;
  }
  return "no error";
}

describe("parseDhcp on captured udhcpc/dnsmasq traffic", () => {
  it("reads udhcpc's DISCOVER", () => {
    const m = parseDhcp(payload(cap.discover));
    expect(m).toMatchObject({
      op: BOOTREQUEST,
      xid: cap.XID,
      secs: 0,
      broadcast: false,
      messageType: DHCPDISCOVER,
    });
    expect([m.ciaddr, m.yiaddr, m.siaddr, m.giaddr]).toEqual([0, 0, 0, 0]);
    expect(macToString(m.chaddr)).toBe(cap.CLIENT_MAC);
    expect(requestedHostname(m)).toBe("guest1");
    expect(parameterRequestList(m)).toEqual([1, 3, 6, 12, 15, 26, 28, 42, 119]);
    expect(clientIdentifier(m)?.toString("hex")).toBe("01020000000002");
    expect(maxMessageSize(m)).toBe(576);
    expect(optionString(m, 60)).toBe("udhcp 1.35.0");
    expect(requestedIp(m)).toBeUndefined();
    expect(serverIdentifier(m)).toBeUndefined();
  });

  it("reads dnsmasq's OFFER with every option udhcpc asked for", () => {
    const m = parseDhcp(payload(cap.offer));
    expect(m).toMatchObject({ op: 2, xid: cap.XID, messageType: DHCPOFFER, yiaddr: cap.LEASED_IP });
    expect(m.siaddr).toBe(cap.SERVER_IP);
    expect(serverIdentifier(m)).toBe(cap.SERVER_IP);
    expect(optionU32(m, OPT_LEASE_TIME)).toBe(3600);
    expect(optionU32(m, OPT_RENEWAL_TIME)).toBe(1800);
    expect(optionU32(m, OPT_REBINDING_TIME)).toBe(3150);
    expect(optionU32(m, OPT_SUBNET_MASK)).toBe(ip("255.255.255.0"));
    expect(optionU32(m, 28)).toBe(ip("10.77.0.255"));
    expect(optionIpv4List(m, 3)).toEqual([cap.SERVER_IP]);
    expect(optionIpv4List(m, 6)).toEqual([cap.SERVER_IP]);
    expect(optionU16(m, OPT_MTU)).toBe(1400);
    expect(decodeDomainSearch(m.options.get(OPT_DOMAIN_SEARCH)!)).toEqual(["home.arpa", "example.test"]);
  });

  it("reads the SELECTING REQUEST, the renewal and the RELEASE", () => {
    const req = parseDhcp(payload(cap.request));
    expect(req.messageType).toBe(DHCPREQUEST);
    expect(requestedIp(req)).toBe(cap.LEASED_IP);
    expect(serverIdentifier(req)).toBe(cap.SERVER_IP);
    expect(req.ciaddr).toBe(0);

    const renew = parseDhcp(payload(cap.renewRequest));
    expect(renew.messageType).toBe(DHCPREQUEST);
    expect(renew.ciaddr).toBe(cap.LEASED_IP);
    expect(requestedIp(renew)).toBeUndefined();
    expect(serverIdentifier(renew)).toBeUndefined();

    const ack = parseDhcp(payload(cap.renewAck));
    expect(ack).toMatchObject({ messageType: DHCPACK, ciaddr: cap.LEASED_IP, yiaddr: cap.LEASED_IP });
    expect(requestedHostname(ack)).toBe("guest1");

    const rel = parseDhcp(payload(cap.release));
    expect(rel).toMatchObject({
      messageType: DHCPRELEASE,
      xid: cap.RELEASE_XID,
      secs: 2,
      ciaddr: cap.LEASED_IP,
    });
    expect(serverIdentifier(rel)).toBe(cap.SERVER_IP);
  });

  it("reads the broadcast flag and a DISCOVER without client id or parameter list", () => {
    const m = parseDhcp(payload(cap.broadcastDiscover));
    expect(m.broadcast).toBe(true);
    expect(m.xid).toBe(cap.BROADCAST_XID);
    expect(parameterRequestList(m)).toEqual([]);
    expect(clientIdentifier(m)).toBeUndefined();
    expect(parseDhcp(payload(cap.broadcastAck)).broadcast).toBe(true);
  });

  it("pretty-prints", () => {
    expect(formatDhcp(parseDhcp(payload(cap.request)))).toBe(
      'DHCP REQUEST xid=0xacfc910f chaddr=02:00:00:00:00:02 req=10.77.0.56 server=10.77.0.1 host="guest1"',
    );
    expect(formatDhcp(parseDhcp(payload(cap.broadcastOffer)))).toBe(
      "DHCP OFFER xid=0x8766f45f chaddr=02:00:00:00:00:02 yiaddr=10.77.0.56 server=10.77.0.1 lease=3600s bcast",
    );
  });
});

describe("emitDhcp", () => {
  const dnsmasqOffer = parseDhcp(payload(cap.offer));
  const fields = {
    messageType: DHCPOFFER,
    xid: cap.XID,
    yiaddr: cap.LEASED_IP,
    siaddr: cap.SERVER_IP,
    chaddr: dnsmasqOffer.chaddr,
    serverId: cap.SERVER_IP,
    leaseTimeSeconds: 3600,
    renewalSeconds: 1800,
    rebindingSeconds: 3150,
    subnetMask: ip("255.255.255.0"),
    broadcastAddress: ip("10.77.0.255"),
    routers: [cap.SERVER_IP],
    dnsServers: [cap.SERVER_IP],
    searchDomains: ["home.arpa", "example.test."],
    mtu: 1400,
    hostname: "guest1",
  };

  it("encodes the same option values dnsmasq sent for the same configuration", () => {
    const ours = parseDhcp(emitDhcp(fields));
    for (const [code, value] of dnsmasqOffer.options) {
      expect(ours.options.get(code)?.toString("hex"), `option ${code}`).toBe(value.toString("hex"));
    }
    expect(optionString(ours, 15)).toBe("home.arpa");
    expect(requestedHostname(ours)).toBe("guest1");
    const { options: _a, chaddr: _b, ...header } = ours;
    const { options: _c, chaddr: _d, ...theirs } = dnsmasqOffer;
    expect(header).toEqual(theirs);
  });

  it("round-trips: emit, parse, emit gives the same bytes, at least 300 long", () => {
    const once = emitDhcp(fields);
    expect(once.length).toBeGreaterThanOrEqual(300);
    const m = parseDhcp(once);
    const again = emitDhcp({
      ...fields,
      routers: optionIpv4List(m, 3),
      searchDomains: decodeDomainSearch(m.options.get(OPT_DOMAIN_SEARCH)!),
      hostname: requestedHostname(m),
    });
    expect(again.equals(once)).toBe(true);
    const bare = emitDhcp({
      messageType: DHCPDISCOVER,
      op: BOOTREQUEST,
      xid: 1,
      chaddr: m.chaddr,
      broadcast: true,
    });
    expect(bare.length).toBe(300);
    expect(parseDhcp(bare)).toMatchObject({
      op: BOOTREQUEST,
      xid: 1,
      broadcast: true,
      messageType: DHCPDISCOVER,
    });
  });

  it("splits an option over 255 bytes into instances that parse back as one (RFC 3396)", () => {
    const domains = Array.from({ length: 20 }, (_, i) => `zone${i}.example.test`);
    const buf = emitDhcp({ ...fields, searchDomains: domains });
    const value = parseDhcp(buf).options.get(OPT_DOMAIN_SEARCH)!;
    expect(value.length).toBeGreaterThan(255);
    expect(decodeDomainSearch(value)).toEqual(domains);
  });

  it("reads options overloaded into the file and sname fields", () => {
    const buf = emitDhcp({ ...fields, extraOptions: [[52, Buffer.of(3)]] });
    buf.set([12, 3, 0x61, 0x62, 0x63, 255], 108); // file: hostname "abc"
    buf.set([0, 66, 2, 0x68, 0x69, 255], 44); // sname: pad, TFTP server "hi"
    const m = parseDhcp(buf);
    // The hostname in the options field and the one in `file` concatenate (RFC 3396).
    expect(requestedHostname(m)).toBe("guest1abc");
    expect(optionString(m, 66)).toBe("hi");
  });
});

describe("domain search lists", () => {
  it("follows compression pointers (RFC 3397 section 3 example)", () => {
    const value = Buffer.from([
      ...[3, 0x65, 0x6e, 0x67, 5, 0x61, 0x70, 0x70, 0x6c, 0x65, 3, 0x63, 0x6f, 0x6d, 0], // eng.apple.com
      ...[0xc0, 4], // apple.com
      ...[3, 0x6d, 0x61, 0x72, 0xc0, 4], // mar.apple.com
    ]);
    expect(decodeDomainSearch(value)).toEqual(["eng.apple.com", "apple.com", "mar.apple.com"]);
  });

  it("rejects pointer loops, dangling labels and bad names", () => {
    expect(wireReason(() => decodeDomainSearch(Buffer.from([0xc0, 0])))).toBe("bad-option");
    expect(wireReason(() => decodeDomainSearch(Buffer.from([3, 0x61, 0x62])))).toBe("bad-option");
    expect(wireReason(() => decodeDomainSearch(Buffer.from([1, 0x61])))).toBe("bad-option");
    expect(wireReason(() => encodeDomainSearch(["a..b"]))).toBe("bad-domain");
    expect(wireReason(() => encodeDomainSearch([`${"x".repeat(64)}.test`]))).toBe("bad-domain");
    expect(wireReason(() => encodeDomainSearch([Array(130).fill("ab").join(".")]))).toBe("bad-domain");
  });
});

describe("malformed input", () => {
  const reasons = new Set(["truncated", "bad-magic", "bad-option", "not-ethernet"]);

  it.each(Object.entries(all))(
    "every truncation of %s fails with a WireError until the End option",
    (_, f) => {
      const full = payload(f);
      const whole = parseDhcp(full);
      let firstValid = -1;
      for (let n = 0; n <= full.length; n++) {
        const cut = full.subarray(0, n);
        let parsed: ReturnType<typeof parseDhcp> | undefined;
        try {
          parsed = parseDhcp(cut);
        } catch (e) {
          expect(WireError.isInstance(e), `length ${n}: ${e}`).toBe(true);
          expect(reasons.has((e as WireError).reason)).toBe(true);
          expect(firstValid, `length ${n} failed after ${firstValid} parsed`).toBe(-1);
          continue;
        }
        if (firstValid < 0) firstValid = n;
        expect(parsed).toEqual(whole);
      }
      // The first complete prefix ends exactly with the End option.
      expect(firstValid).toBeGreaterThan(240);
      expect(full[firstValid - 1]).toBe(255);
    },
  );

  it("rejects a bad magic cookie", () => {
    const buf = payload(cap.discover);
    buf[236] = 0x64;
    expect(wireReason(() => parseDhcp(buf))).toBe("bad-magic");
  });

  it("rejects an option running past the end", () => {
    const buf = payload(cap.discover);
    // First option is 53 (message type) at 240; its length now claims the rest and more.
    expect(buf[240]).toBe(53);
    buf[241] = 250;
    expect(wireReason(() => parseDhcp(buf))).toBe("truncated");
  });

  it("rejects a zero-length chaddr and non-Ethernet hardware", () => {
    const zero = payload(cap.request);
    zero[2] = 0;
    expect(wireReason(() => parseDhcp(zero))).toBe("not-ethernet");
    const tokenRing = payload(cap.request);
    tokenRing[1] = 6;
    expect(wireReason(() => parseDhcp(tokenRing))).toBe("not-ethernet");
  });

  it("rejects a bad message type or overload option", () => {
    const base = parseDhcp(payload(cap.request));
    const twoByteType = emitDhcp({ messageType: DHCPREQUEST, xid: 1, chaddr: base.chaddr });
    twoByteType[241] = 2;
    twoByteType[244] = 255; // option 53 is now [3, 255]; End moves one byte on
    expect(wireReason(() => parseDhcp(twoByteType))).toBe("bad-option");
    const overload = emitDhcp({
      messageType: DHCPREQUEST,
      xid: 1,
      chaddr: base.chaddr,
      extraOptions: [[52, Buffer.of(4)]],
    });
    expect(wireReason(() => parseDhcp(overload))).toBe("bad-option");
  });

  it("throws nothing but WireError for random corruption of real messages", () => {
    // Deterministic byte flips (xorshift) over every captured payload.
    let s = 0x2545f491;
    const next = () => {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      return s >>> 0;
    };
    for (const f of Object.values(all)) {
      for (let round = 0; round < 300; round++) {
        const buf = payload(f);
        for (let k = 0; k < 4; k++) buf[240 + (next() % (buf.length - 240))] = next() & 0xff;
        try {
          const m = parseDhcp(buf);
          formatDhcp(m);
          const search = m.options.get(OPT_DOMAIN_SEARCH);
          if (search) decodeDomainSearch(search);
        } catch (e) {
          expect(WireError.isInstance(e), String(e)).toBe(true);
        }
      }
    }
  });
});
