/** Command-line spellings, resolv.conf, and reverse names. */
import { describe, expect, it } from "vitest";
import {
  DnsConfigError,
  ipToReverseName,
  parseForwardRule,
  parseRecord,
  parseResolvConf,
  parseServer,
  reverseNameToIp,
} from "../src/index.js";

describe("parsers", () => {
  it("reads servers with and without ports, IPv4 and IPv6", () => {
    expect(parseServer("10.0.0.53")).toEqual({ host: "10.0.0.53", port: 53 });
    expect(parseServer("10.0.0.53:5353")).toEqual({ host: "10.0.0.53", port: 5353 });
    expect(parseServer("[fd00::53]:54")).toEqual({ host: "fd00::53", port: 54 });
    expect(parseServer("fd00::53")).toEqual({ host: "fd00::53", port: 53 });
  });

  it.each(["", "corp", "10.0.0.1:0", "10.0.0.1:99999", "10.0.0.1:x", "300.1.1.1"])(
    "rejects the server %j with a typed error",
    (text) => {
      expect(() => parseServer(text)).toThrow(DnsConfigError);
    },
  );

  it("reads forwarding rules and records", () => {
    expect(parseForwardRule("Corp.Example.=10.0.0.53:53,10.0.0.54")).toEqual({
      domain: "corp.example",
      servers: [
        { host: "10.0.0.53", port: 53 },
        { host: "10.0.0.54", port: 53 },
      ],
    });
    expect(parseRecord("db.test=10.0.0.7")).toEqual({ name: "db.test", type: "A", data: "10.0.0.7" });
    expect(parseRecord("*.test.internal=fd00::1")).toMatchObject({ name: "*.test.internal", type: "AAAA" });
    for (const bad of ["=10.0.0.1", "x y=10.0.0.1", "db.test=", "db.test=host"]) {
      expect(() => parseRecord(bad), bad).toThrow(DnsConfigError);
    }
    expect(() => parseForwardRule("corp.example")).toThrow(DnsConfigError);
    expect(DnsConfigError.isInstance(new DnsConfigError("x"))).toBe(true);
  });

  it("reads every record type as NAME/TYPE=DATA", () => {
    expect(parseRecord("api.test/CNAME=Web.Test.")).toEqual({
      name: "api.test",
      type: "CNAME",
      data: "web.test",
    });
    expect(parseRecord("7.0.0.10.in-addr.arpa/ptr=db.test")).toEqual({
      name: "7.0.0.10.in-addr.arpa",
      type: "PTR",
      data: "db.test",
    });
    expect(parseRecord("info.test/TXT=v=spf1 -all")).toEqual({
      name: "info.test",
      type: "TXT",
      data: "v=spf1 -all",
    });
    expect(parseRecord("mail.test/MX=5 mx.mail.test")).toEqual({
      name: "mail.test",
      type: "MX",
      data: { preference: 5, exchange: "mx.mail.test" },
    });
    expect(parseRecord("mail.test/MX=mx.mail.test")).toMatchObject({ data: { preference: 10 } });
    expect(parseRecord("_http._tcp.web.test/SRV=1 2 8080 web.test")).toEqual({
      name: "_http._tcp.web.test",
      type: "SRV",
      data: { priority: 1, weight: 2, port: 8080, target: "web.test" },
    });
    expect(parseRecord("_http._tcp.web.test/SRV=80 web.test")).toMatchObject({
      data: { priority: 0, weight: 0, port: 80, target: "web.test" },
    });
    expect(parseRecord("v6.test/AAAA=fd00::2")).toMatchObject({ type: "AAAA" });
    for (const [bad, message] of [
      ["v4.test/AAAA=10.0.0.1", "is not an IPv6 address"],
      ["x.test/NS=ns.test", 'record type "NS" is not one of'],
      ["x.test/MX=1 2 3", "expected NAME/MX="],
      ["x.test/SRV=1 2 web.test", "expected NAME/SRV="],
      ["x.test/SRV=1 2 70000 web.test", 'port "70000" must be 0..65535'],
      ["x.test/CNAME=not a name", "is not a domain name"],
      [`x.test/TXT=${"a".repeat(256)}`, "longer than 255 bytes"],
    ] as const) {
      expect(() => parseRecord(bad), bad).toThrow(message);
    }
  });

  it("reads resolv.conf nameservers in order, at most three, port 53", () => {
    const text = [
      "# generated",
      "search corp.example",
      "nameserver 10.0.0.53 ; VPN",
      "nameserver fe80::1%eth0",
      "options edns0",
      "nameserver not-an-ip",
      "nameserver 10.0.0.54",
      "nameserver 10.0.0.55",
    ].join("\n");
    expect(parseResolvConf(text)).toEqual([
      { host: "10.0.0.53", port: 53 },
      { host: "fe80::1%eth0", port: 53 },
      { host: "10.0.0.54", port: 53 },
    ]);
    expect(parseResolvConf("search x\n")).toEqual([{ host: "127.0.0.1", port: 53 }]);
  });

  it("maps addresses to reverse names and back", () => {
    expect(ipToReverseName("192.168.65.7")).toBe("7.65.168.192.in-addr.arpa");
    expect(reverseNameToIp("7.65.168.192.IN-ADDR.ARPA.")).toBe("192.168.65.7");
    const v6 = ipToReverseName("fd00::7");
    expect(v6).toBe(`7.0.0.0.${"0.".repeat(26)}d.f.ip6.arpa`);
    expect(reverseNameToIp(v6)).toBe("fd00::7");
    expect(reverseNameToIp("1.2.3.in-addr.arpa")).toBeUndefined();
    expect(reverseNameToIp("example.com")).toBeUndefined();
  });
});
