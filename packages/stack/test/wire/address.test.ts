import { describe, expect, it } from "vitest";
import {
  BROADCAST_MAC,
  ipv4ToString,
  isBroadcastMac,
  isMulticastMac,
  macToString,
  parseIpv4Address,
  parseMac,
} from "../../src/wire/address.js";

describe("IPv4 addresses", () => {
  it.each([
    ["0.0.0.0", 0],
    ["10.99.0.1", 0x0a630001],
    ["192.168.255.254", 0xc0a8fffe],
    ["255.255.255.255", 0xffffffff],
  ])("parses and prints %s", (text, ip) => {
    expect(parseIpv4Address(text)).toBe(ip);
    expect(ipv4ToString(ip)).toBe(text);
  });

  it("prints a signed 32-bit value as the same address", () => {
    expect(ipv4ToString(0xc0a80001 | 0)).toBe("192.168.0.1");
    expect(ipv4ToString(-1)).toBe("255.255.255.255");
  });

  it.each([
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "1.2.3.-4",
    "a.b.c.d",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1..3.4",
    "1.2.3.1000",
  ])("rejects %j", (text) => {
    expect(parseIpv4Address(text)).toBeUndefined();
  });
});

describe("MAC addresses", () => {
  it("parses colon and dash notation and prints lowercase with colons", () => {
    const mac = parseMac("02:00:00:00:00:0A")!;
    expect([...mac]).toEqual([2, 0, 0, 0, 0, 10]);
    expect(parseMac("02-00-00-00-00-0a")!.equals(mac)).toBe(true);
    expect(macToString(mac)).toBe("02:00:00:00:00:0a");
  });

  it.each(["", "02:00:00:00:00", "02:00:00:00:00:0a:0b", "02:00:00:00:00:0g", "020:00:00:00:00:0a"])(
    "rejects %j",
    (text) => {
      expect(parseMac(text)).toBeUndefined();
    },
  );

  it("prints only the first 6 bytes of a longer view", () => {
    expect(macToString(Buffer.from("ffffffffffff02000000000a", "hex"))).toBe("ff:ff:ff:ff:ff:ff");
  });

  it("classifies broadcast and multicast", () => {
    expect(isBroadcastMac(BROADCAST_MAC)).toBe(true);
    expect(isMulticastMac(BROADCAST_MAC)).toBe(true);
    const ipv6Multicast = parseMac("33:33:00:00:00:02")!;
    expect(isBroadcastMac(ipv6Multicast)).toBe(false);
    expect(isMulticastMac(ipv6Multicast)).toBe(true);
    const unicast = parseMac("02:00:00:00:00:0b")!;
    expect(isBroadcastMac(unicast)).toBe(false);
    expect(isMulticastMac(unicast)).toBe(false);
    expect(isBroadcastMac(parseMac("ff:ff:ff:ff:ff:fe")!)).toBe(false);
  });
});
