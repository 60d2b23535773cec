/**
 * The egress policy over IPv6: defaults (the host address is the host's ::1, loopback and the
 * guests' own prefix refused, addresses no router forwards refused before any rule, IPv4-mapped,
 * NAT64 and IPv4-compatible addresses never a way around IPv4 rules), rules by IPv6 address and
 * prefix, and their text.
 */
import { afterEach, describe, expect, it } from "vitest";
import { EgressPolicy, formatEgressRule, parseEgressRule } from "../../src/egress.js";
import { ConfigError } from "../../src/errors.js";
import { type FrameHarness, frameHarness } from "../../src/testing/frame-harness.js";
import { parseIpv4Address } from "../../src/wire/address.js";
import { TCP_SYN } from "../../src/wire/tcp.js";

const NET = {
  hostAddress: parseIpv4Address("192.168.65.254")!,
  network: parseIpv4Address("192.168.65.0")!,
  netmask: parseIpv4Address("255.255.255.0")!,
  ipv6: { hostAddress: "fdc4:f303:9324::254", prefix: "fdc4:f303:9324::/64" },
};
const GUEST6 = "fdc4:f303:9324::3";

function verdict(policy: EgressPolicy, dst: string, dstPort = 443, protocol: "tcp" | "udp" = "tcp") {
  return policy.check({ protocol, guestIp: GUEST6, guestPort: 40000, dstIp: dst, dstPort });
}

describe("egress over IPv6", () => {
  it("defaults: host address allowed, loopback and the guests' prefix refused, the rest allowed", () => {
    const p = new EgressPolicy(NET);
    expect(verdict(p, "fdc4:f303:9324::254")).toEqual({ allowed: true, by: "host-loopback" });
    expect(verdict(p, "::1")).toEqual({ allowed: false, by: "loopback" });
    expect(verdict(p, "::")).toEqual({ allowed: false, by: "loopback" });
    expect(verdict(p, "fdc4:f303:9324::77")).toEqual({ allowed: false, by: "subnet" });
    expect(verdict(p, "2001:db8::1")).toEqual({ allowed: true, by: "default" });
    expect(p.counters()).toMatchObject({ allowed: 2, denied: 3 });
    const off = new EgressPolicy(NET, { hostLoopback: false });
    expect(verdict(off, "fdc4:f303:9324::254")).toEqual({ allowed: false, by: "host-loopback-off" });
  });

  it("refuses IPv4-mapped, link-local and multicast destinations before any rule, even 'allow *'", () => {
    const p = new EgressPolicy(NET, { rules: ["allow *"] });
    for (const dst of ["::ffff:127.0.0.1", "::ffff:c0a8:41fe", "fe80::1", "ff02::1", "not-an-address"]) {
      expect(verdict(p, dst), dst).toEqual({ allowed: false, by: "unroutable" });
    }
    expect(verdict(p, "2001:db8::1")).toEqual({ allowed: true, by: 1 });
  });

  it("matches rules by IPv6 address and prefix, with ports, and keeps families apart", () => {
    const p = new EgressPolicy(NET, {
      rules: ["deny tcp [2001:db8::/32]:443", "deny 2001:db9::7", "deny 0.0.0.0/0", "allow ::/0"],
    });
    expect(verdict(p, "2001:db8:1::5", 443)).toEqual({ allowed: false, by: 1 });
    expect(verdict(p, "2001:db8:1::5", 443, "udp")).toEqual({ allowed: true, by: 4 });
    expect(verdict(p, "2001:db8:1::5", 80)).toEqual({ allowed: true, by: 4 });
    expect(verdict(p, "2001:db9::7")).toEqual({ allowed: false, by: 2 });
    expect(verdict(p, "2001:db9::8")).toEqual({ allowed: true, by: 4 });
    // An IPv4 rule never matches an IPv6 flow, nor an IPv6 rule an IPv4 one.
    expect(
      p.check({
        protocol: "tcp",
        guestIp: 1,
        guestPort: 1,
        dstIp: parseIpv4Address("10.0.0.1")!,
        dstPort: 443,
      }),
    ).toEqual({ allowed: false, by: 3 });
  });

  it("judges NAT64 and IPv4-compatible destinations by the IPv4 address they stand for as well", () => {
    const p = new EgressPolicy(NET, { rules: ["deny 169.254.0.0/16", "deny tcp [64:ff9b::/96]:25"] });
    // 169.254.169.254 through NAT64's prefix, and IPv4-compatible: each is the rule's.
    expect(verdict(p, "64:ff9b::a9fe:a9fe")).toEqual({ allowed: false, by: 1 });
    expect(verdict(p, "::a9fe:a9fe")).toEqual({ allowed: false, by: 1 });
    // IPv6 rules still match the IPv6 address.
    expect(verdict(p, "64:ff9b::808:808", 25)).toEqual({ allowed: false, by: 2 });
    // IPv4's defaults: loopback, "this network" and the guests' subnet stay out of reach.
    expect(verdict(p, "64:ff9b::7f00:1")).toEqual({ allowed: false, by: "loopback" });
    expect(verdict(p, "64:ff9b::a00")).toEqual({ allowed: false, by: "loopback" });
    expect(verdict(p, "64:ff9b::c0a8:4104")).toEqual({ allowed: false, by: "subnet" });
    expect(verdict(p, "64:ff9b::c0a8:41fe")).toEqual({ allowed: false, by: "subnet" });
    // The rest goes out; ::1 and :: are IPv6's own, not IPv4 in disguise.
    expect(verdict(p, "64:ff9b::808:808")).toEqual({ allowed: true, by: "default" });
    expect(verdict(p, "64:ff9b:1::a9fe:a9fe")).toEqual({ allowed: true, by: "default" });
    expect(verdict(p, "::1")).toEqual({ allowed: false, by: "loopback" });
  });

  it("decides a proxy's connection to an IPv4-mapped address by the IPv4 rules", () => {
    const p = new EgressPolicy(NET, { rules: ["deny 10.0.0.0/8"] });
    const q = { protocol: "tcp" as const, guestIp: GUEST6, guestPort: 1, dstPort: 80 };
    expect(p.checkConnection({ ...q, dstIp: "::ffff:10.1.2.3" })).toEqual({ allowed: false, by: 1 });
    expect(p.checkConnection({ ...q, dstIp: "2001:DB8:0:0::1" })).toEqual({ allowed: true, by: "default" });
    expect(() => p.checkConnection({ ...q, dstIp: "no.such" })).toThrow(ConfigError);
  });

  it("writes and reads IPv6 targets: bare without ports, bracketed with them", () => {
    for (const text of [
      "deny fd00::/8",
      "allow udp [2001:db8::/32]:53",
      "deny [::1]:8000-8100",
      "allow 10.0.0.0/8:22",
    ]) {
      expect(formatEgressRule(parseEgressRule(text))).toBe(text);
    }
    expect(parseEgressRule("deny [fd00::/8]")).toEqual({ action: "deny", to: "fd00::/8" });
    for (const bad of ["deny [fd00::/8", "deny fd00::/129", "deny [fd00::]:0", "deny fd00:::1"]) {
      expect(() => parseEgressRule(bad), bad).toThrow(ConfigError);
    }
  });
});

describe("egress rules by name, across a guest's families", () => {
  let h: FrameHarness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("count the names answered to any address of the same guest (asked over IPv4, connected over IPv6)", async () => {
    // The DNS server answered www.example.test with 2001:db8::5 to the guest's IPv4 address only.
    const answered: Record<string, string[]> = { "192.168.65.3|2001:db8::5": ["www.example.test"] };
    h = frameHarness({
      egress: {
        rules: ["allow www.example.test", "deny *"],
        namesFor: (guest, dst) => answered[`${guest}|${dst}`] ?? [],
      },
    });
    const g = h.guest("02:00:00:00:00:03", "192.168.65.3");
    const other = h.guest("02:00:00:00:00:04", "192.168.65.4");
    // Each guest is heard over both families (a SYN to a closed port will do).
    g.tcp({ dst: h.config.gateway, srcPort: 40000, dstPort: 9, flags: TCP_SYN });
    g.tcp6("fdc4:f303:9324::3", { dst: "fdc4:f303:9324::1", srcPort: 40000, dstPort: 9, flags: TCP_SYN });
    other.tcp({ dst: h.config.gateway, srcPort: 40000, dstPort: 9, flags: TCP_SYN });
    other.tcp6("fdc4:f303:9324::4", { dst: "fdc4:f303:9324::1", srcPort: 40000, dstPort: 9, flags: TCP_SYN });
    await h.settle();
    const q = { protocol: "tcp" as const, guestPort: 1, dstIp: "2001:db8::5", dstPort: 443 };
    expect(h.stack.egress.checkConnection({ ...q, guestIp: "fdc4:f303:9324::3" })).toEqual({
      allowed: true,
      by: 1,
    });
    // Another guest was answered nothing: its own names only.
    expect(h.stack.egress.checkConnection({ ...q, guestIp: "fdc4:f303:9324::4" })).toEqual({
      allowed: false,
      by: 2,
    });
    // And the other way: answered to the IPv6 address, connecting over IPv4.
    answered["fdc4:f303:9324::3|93.184.216.34"] = ["www.example.test"];
    const q4 = { ...q, dstIp: "93.184.216.34" };
    expect(h.stack.egress.checkConnection({ ...q4, guestIp: "192.168.65.3" })).toEqual({
      allowed: true,
      by: 1,
    });
    expect(h.stack.egress.checkConnection({ ...q4, guestIp: "192.168.65.4" })).toEqual({
      allowed: false,
      by: 2,
    });
  });
});
