import { describe, expect, it } from "vitest";
import { namesNoTransport, parseDemoOptions, parseRunOptions } from "../src/config.js";
import { InvalidOptionError } from "../src/errors.js";
import { stackLimits } from "../src/stack-options.js";

function rejection(input: unknown): InvalidOptionError {
  try {
    parseRunOptions(input);
  } catch (error) {
    expect(InvalidOptionError.isInstance(error)).toBe(true);
    return error as InvalidOptionError;
  }
  throw new Error(`accepted ${JSON.stringify(input)}`);
}

describe("parseRunOptions", () => {
  it("fills in the documented defaults", () => {
    expect(parseRunOptions({ netns: "dtd-a-1" })).toEqual({
      netns: "dtd-a-1",
      ifname: "eth0",
      qemuSocket: [],
      qemuConnect: [],
      vfkitSocket: [],
      stdio: false,
      configure: false,
      subnet: "192.168.65.0/24",
      mtu: 1500,
      offload: true,
      logLevel: "info",
      dnsRecord: [],
      dnsForward: [],
      egress: [],
      hostLoopback: true,
      sourceGuard: true,
      transparentProxyPorts: [80, 443],
      sshAgent: true,
      sshAgentSignOnly: false,
      autoforward: true,
      autoforwardRule: [],
      ipv6: true,
      icmpRelay: true,
    });
  });

  it("takes automatic forward rules as text or objects, kept as text, and names a bad one", () => {
    expect(
      parseRunOptions({
        autoforwardRule: [
          "ignore 22",
          { action: "forward", protocol: "tcp", ports: "3000-3999", hostPort: "+10000" },
        ],
      }).autoforwardRule,
    ).toEqual(["ignore 22", "forward tcp 3000-3999 to +10000"]);
    expect(() => parseRunOptions({ autoforwardRule: "drop 22" })).toThrow(
      '--autoforward-rule: autoforward rule "drop 22": starts with "forward" or "ignore"',
    );
  });

  it("takes the IPv6 prefix as a /64 only", () => {
    expect(parseRunOptions({ ipv6Prefix: "fd00:1:2:3::/64" }).ipv6Prefix).toBe("fd00:1:2:3::/64");
    expect(() => parseRunOptions({ ipv6Prefix: "fd00::/48" })).toThrow("--ipv6-prefix: must be a /64 prefix");
    expect(parseRunOptions({ ipv6: false }).ipv6).toBe(false);
  });

  it("takes the SSH agent options and names a bad fingerprint", () => {
    const fp = "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8";
    expect(parseRunOptions({ sshAgentKeys: `${fp}, ${fp}` }).sshAgentKeys).toEqual([fp, fp]);
    expect(
      parseRunOptions({ sshAgentKeys: [fp], sshAgentSignOnly: true, sshAuthSock: "/tmp/a.sock" }),
    ).toMatchObject({
      sshAgentKeys: [fp],
      sshAgentSignOnly: true,
      sshAuthSock: "/tmp/a.sock",
    });
    expect(() => parseRunOptions({ sshAgentKeys: "MD5:aa:bb" })).toThrow(
      '--ssh-agent-keys: "MD5:aa:bb" is not a key fingerprint',
    );
  });

  it("takes the proxy options and names the key of a bad one", () => {
    const c = parseRunOptions({
      upstreamProxy: "socks5h://user:pw@127.0.0.1:1080",
      noProxy: "localhost, .corp.example 10.0.0.0/8",
      transparentProxyPorts: "80,8080",
      socks5: "127.0.0.1:1080",
      socks5Auth: "door:pass:with:colons",
    });
    expect(c.noProxy).toEqual(["localhost", ".corp.example", "10.0.0.0/8"]);
    expect(c.transparentProxyPorts).toEqual([80, 8080]);
    expect(parseRunOptions({ upstreamProxy: "direct" }).upstreamProxy).toBe("direct");
    expect(parseRunOptions({ transparentProxyPorts: "none" }).transparentProxyPorts).toEqual([]);
    expect(parseRunOptions({ transparentProxyPorts: [443] }).transparentProxyPorts).toEqual([443]);
    expect(() => parseRunOptions({ upstreamProxy: "ftp://proxy:21" })).toThrow(/^--upstream-proxy: /);
    // The password never appears in the message.
    expect(() => parseRunOptions({ upstreamProxy: "http://u:hunter2@proxy:99999" })).toThrow(
      /^--upstream-proxy: (?!.*hunter2)/,
    );
    expect(() => parseRunOptions({ noProxy: "10.0.0.0/40" })).toThrow(/^--no-proxy: /);
    expect(() => parseRunOptions({ transparentProxyPorts: "80,http" })).toThrow(
      '--transparent-proxy-ports: "http" is not a port',
    );
    expect(() => parseRunOptions({ socks5: "0.0.0.0:1080" })).toThrow("--socks5: ");
    expect(() => parseRunOptions({ socks5Auth: "nopassword" })).toThrow(
      "--socks5-auth: must be USER:PASSWORD",
    );
  });

  it("takes egress rules as text or objects, one or many, and names a bad one", () => {
    expect(parseRunOptions({ egress: "deny 10.0.0.0/8" }).egress).toEqual([
      { action: "deny", to: "10.0.0.0/8" },
    ]);
    expect(
      parseRunOptions({
        egress: ["allow tcp *.corp.example:443", { action: "deny", to: "*", protocol: "udp" }],
      }).egress,
    ).toEqual([
      { action: "allow", protocol: "tcp", to: "*.corp.example", ports: "443" },
      { action: "deny", protocol: "udp", to: "*" },
    ]);
    expect(() => parseRunOptions({ egress: ["deny 10.0.0.0/40"] })).toThrow("--egress: egress rule");
    expect(() => parseRunOptions({ egress: [{ action: "drop", to: "*" }] })).toThrow("allow or deny");
  });

  it("takes timeouts in seconds and budgets in MiB, as the stack's milliseconds and bytes", () => {
    const c = parseRunOptions({
      udpTimeout: "30",
      udpStreamTimeout: 90,
      tcpKeepalive: "0",
      guestKeepalive: 120,
      finWait2Timeout: 10,
      bufferMemory: 64,
      bufferMemoryPerGuest: "16",
      hostLoopback: false,
    });
    expect(stackLimits(c)).toEqual({
      egress: { rules: [], hostLoopback: false },
      sourceGuard: true,
      tcp: {
        hostKeepAliveMs: 0,
        guestKeepAliveMs: 120_000,
        finWait2TimeoutMs: 10_000,
        memory: { totalBytes: 64 * 1048576, perGuestBytes: 16 * 1048576 },
      },
      udp: { idleTimeoutMs: 30_000, streamTimeoutMs: 90_000 },
    });
    expect(() => parseRunOptions({ udpTimeout: 0 })).toThrow(
      "--udp-timeout: must be between 1 and 86400 seconds",
    );
    expect(() => parseRunOptions({ bufferMemory: 0 })).toThrow("--buffer-memory: must be at least 1 MiB");
  });

  it("takes the DNS host mode, and names the choices when it is wrong", () => {
    expect(parseRunOptions({ dnsHostMode: "nameservers" }).dnsHostMode).toBe("nameservers");
    expect(() => parseRunOptions({ dnsHostMode: "dns" })).toThrow(
      "--dns-host-mode: must be one of os, nameservers",
    );
    expect(() => parseRunOptions({ dnsHostMode: "os", dnsUpstream: "127.0.0.1" })).toThrow(
      "--dns-host-mode: not with --dns-upstream",
    );
  });

  it("takes one string where a list is expected (a config file naming one socket)", () => {
    const config = parseRunOptions({ qemuSocket: "/tmp/vm.sock", vfkitSocket: "/tmp/vfkit.sock" });
    expect(config.qemuSocket).toEqual(["/tmp/vm.sock"]);
    expect(config.vfkitSocket).toEqual(["/tmp/vfkit.sock"]);
  });

  it("names no transport when given none (run then listens on the default sockets)", () => {
    expect(namesNoTransport(parseRunOptions({}))).toBe(true);
    expect(namesNoTransport(parseRunOptions({ stdio: true }))).toBe(false);
    expect(namesNoTransport(parseRunOptions({ vfkitSocket: ["/tmp/v.sock"] }))).toBe(false);
    expect(namesNoTransport(parseRunOptions({ qemuSocket: ["tcp:127.0.0.1:5555"] }))).toBe(false);
  });

  it("takes repeatable DNS records and forwarding rules, and an upstream", () => {
    const config = parseRunOptions({
      netns: "n",
      dnsRecord: ["db.test=10.0.0.7", "*.apps.internal=fd00::7"],
      dnsForward: "corp.example=10.0.0.53:5353",
      dnsUpstream: "10.0.0.1",
    });
    expect(config).toMatchObject({
      dnsRecord: ["db.test=10.0.0.7", "*.apps.internal=fd00::7"],
      dnsForward: ["corp.example=10.0.0.53:5353"],
      dnsUpstream: "10.0.0.1",
    });
  });

  it.each([
    [
      { dnsRecord: ["db.test=10.0.0.7", "db.test=nowhere"] },
      /^--dns-record: "db.test=nowhere": "nowhere" is not/,
    ],
    [{ dnsForward: ["corp.example"] }, /^--dns-forward: "corp.example": expected DOMAIN=IP\[:PORT\]/],
    [{ dnsUpstream: "10.0.0.1:99999" }, /^--dns-upstream: "10.0.0.1:99999": port must be 1..65535/],
  ])("rejects the DNS option %j naming the option", (dns, message) => {
    expect(rejection({ netns: "n", ...dns }).message).toMatch(message);
  });

  it("turns offload off with --no-offload", () => {
    expect(parseRunOptions({ netns: "dtd-a-1", offload: false }).offload).toBe(false);
  });

  it("takes the strings commander hands over", () => {
    const config = parseRunOptions({
      netns: "guest",
      configure: true,
      subnet: "10.0.2.0/24",
      mtu: "9000",
      pcap: "/tmp/x.pcap",
      logLevel: "debug",
    });
    expect(config).toMatchObject({ configure: true, subnet: "10.0.2.0/24", mtu: 9000, pcap: "/tmp/x.pcap" });
    expect(config.logLevel).toBe("debug");
  });

  it("accepts the MTU range bounds 68 and 65520", () => {
    expect(parseRunOptions({ netns: "n", mtu: 68 }).mtu).toBe(68);
    expect(parseRunOptions({ netns: "n", mtu: "65520" }).mtu).toBe(65520);
  });

  it.each([
    [{ netns: "n", mtu: 67 }, "--mtu: must be between 68 and 65520"],
    [{ netns: "n", mtu: "65521" }, "--mtu: must be between 68 and 65520"],
    [{ netns: "n", mtu: "1500.5" }, "--mtu: must be an integer"],
    [{ netns: "n", mtu: "big" }, "--mtu: must be a number"],
  ])("rejects MTU %j", (input, message) => {
    expect(rejection(input).message).toBe(message);
  });

  it.each([
    ["192.168.65.0", "not in CIDR notation"],
    ["192.168.65.0/33", "larger than 32"],
    ["192.168.65.0/30", "between /1 and /29"],
    ["0.0.0.0/0", "between /1 and /29"],
    ["192.168.65.7/24", "did you mean 192.168.65.0/24?"],
    ["192.168.256.0/24", "not an IPv4 address"],
    ["192.168.065.0/24", "not an IPv4 address"],
    ["fd00::/64", "not in CIDR notation"],
  ])("rejects subnet %s", (subnet, fragment) => {
    const error = rejection({ netns: "n", subnet });
    expect(error.message).toMatch(/^--subnet: /);
    expect(error.message).toContain(fragment);
  });

  it("accepts the smallest usable subnet, a /29", () => {
    expect(parseRunOptions({ netns: "n", subnet: "10.1.2.8/29" }).subnet).toBe("10.1.2.8/29");
  });

  it.each(["", "a/b", "..", "-x", "has space", "x".repeat(64)])("rejects netns name %j", (netns) => {
    expect(rejection({ netns }).message).toMatch(/^--netns: must be 1-63 characters/);
  });

  it("says --configure needs a namespace", () => {
    expect(rejection({ configure: true }).message).toBe("--configure: needs --netns");
  });

  it("names the option in kebab case", () => {
    expect(rejection({ netns: "n", logLevel: "loud" }).message).toMatch(
      /^--log-level: must be one of trace, /,
    );
  });

  it("rejects an interface name longer than the kernel allows", () => {
    expect(rejection({ netns: "n", ifname: "a-very-long-ifname" }).message).toMatch(/^--ifname: /);
  });
});

describe("parseDemoOptions", () => {
  it("defaults the namespace to desktopd and has no --configure", () => {
    const config = parseDemoOptions({});
    expect(config.netns).toBe("desktopd");
    expect("configure" in config).toBe(false);
  });
});
