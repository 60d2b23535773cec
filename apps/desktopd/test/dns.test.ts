import type { FlowInfo, LeaseInfo, StackConfig } from "@desktopd/stack";
import { describe, expect, it } from "vitest";
import { createGuestDns, guestDnsOptions, leaseLayer } from "../src/dns.js";

const net: StackConfig = {
  subnet: "192.168.65.0/24",
  prefixLength: 24,
  netmask: "255.255.255.0",
  gateway: "192.168.65.1",
  hostAddress: "192.168.65.254",
  firstLease: "192.168.65.3",
  mtu: 1500,
  gatewayMac: "5a:94:ef:e4:0c:dd",
  dnsServers: ["192.168.65.1"],
  searchDomains: [],
};
const flow = (protocol: "tcp" | "udp", dstIp: string, dstPort: number): FlowInfo => ({
  protocol,
  guestIp: "192.168.65.3",
  guestPort: 40000,
  dstIp,
  dstPort,
});

describe("guest DNS wiring", () => {
  it("maps the options: records, forwarding, and --dns-upstream replacing the host's resolution", () => {
    const o = guestDnsOptions(
      {
        dnsRecord: ["db.test=10.0.0.7"],
        dnsForward: ["corp.example=10.0.0.53:5353"],
        dnsUpstream: "10.0.0.1",
      },
      net,
    );
    expect(o).toMatchObject({
      hostAddress: "192.168.65.254",
      gatewayAddress: "192.168.65.1",
      records: [{ name: "db.test", type: "A", data: "10.0.0.7" }],
      forward: [{ domain: "corp.example", servers: [{ host: "10.0.0.53", port: 5353 }] }],
      registry: { subnets: ["192.168.65.0/24"] },
      host: { mode: "nameservers", nameservers: [{ host: "10.0.0.1", port: 53 }] },
    });
    expect(guestDnsOptions({ dnsRecord: [], dnsForward: [] }, net).host).toEqual({ mode: "os" });
    // Answers over UDP fit the link: the stack does not fragment.
    expect(o.server?.maxUdpSize).toBe(1232);
    expect(guestDnsOptions({ dnsRecord: [], dnsForward: [] }, { ...net, mtu: 576 }).server?.maxUdpSize).toBe(
      548,
    );
  });

  it("takes DNS to the gateway once bound and leaves every other flow to the next policy", () => {
    const dns = createGuestDns({ dnsRecord: [], dnsForward: [] });
    const policy = dns.policy({ udp: () => ({ action: "reject" }), tcp: () => ({ action: "nat", port: 1 }) });
    // Before bind the gateway's port 53 is not served yet.
    expect(policy.udp?.(flow("udp", "192.168.65.1", 53))).toEqual({ action: "reject" });
    dns.bind(net);
    expect(policy.udp?.(flow("udp", "192.168.65.1", 53))?.action).toBe("handle");
    expect(policy.tcp?.(flow("tcp", "192.168.65.1", 53))?.action).toBe("handle");
    expect(policy.udp?.(flow("udp", "192.168.65.1", 54))).toEqual({ action: "reject" });
    expect(policy.tcp?.(flow("tcp", "10.0.0.1", 53))).toEqual({ action: "nat", port: 1 });
    dns.close();
    expect(policy.udp?.(flow("udp", "192.168.65.1", 53))).toEqual({ action: "reject" });
  });
});

/** A query for `name` type A, class IN, as a guest's stub resolver sends it. */
function aQuery(id: number, name: string): Buffer {
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

describe("guest DNS name book", () => {
  it("records the names each guest is answered, through the gateway policy, in a book there before bind", async () => {
    const dns = createGuestDns({
      dnsRecord: ["db.test.internal=10.9.8.7", "api.test.internal/CNAME=db.test.internal"],
      dnsForward: [],
    });
    const names = dns.names;
    const policy = dns.policy();
    const bound = dns.bind(net);
    const asked = flow("udp", "192.168.65.1", 53);
    const decision = policy.udp?.(asked);
    if (decision?.action !== "handle") throw new Error("DNS to the gateway is not handled");
    const reply = await new Promise<Buffer>((resolve) =>
      decision.handler(aQuery(7, "api.test.internal"), asked, resolve),
    );
    // NOERROR with two answers: the CNAME and the address.
    expect([reply.readUInt16BE(0), reply.readUInt16BE(2) & 0xf, reply.readUInt16BE(6)]).toEqual([7, 0, 2]);
    expect(names.namesFor("192.168.65.3", "10.9.8.7")).toEqual(["api.test.internal", "db.test.internal"]);
    expect(names.namesFor("192.168.65.4", "10.9.8.7")).toEqual([]);
    expect(bound.handler.counters().names).toMatchObject({ entries: 1, recorded: 1 });
    dns.close();
    expect(names.size).toBe(0);
  });
});

describe("DHCP lease names", () => {
  const leases: LeaseInfo[] = [
    { mac: "02:00:00:00:00:03", ip: "192.168.65.3", hostname: "Web1", expiresAt: 1, static: false },
    { mac: "02:00:00:00:00:04", ip: "192.168.65.4", expiresAt: 1, static: false },
  ];
  const layer = leaseLayer(() => leases);

  it("answers a lease's hostname with its address, and PTR for the address", () => {
    expect(layer.resolve({ name: "web1", type: "A" })).toMatchObject({
      rcode: "NOERROR",
      authoritative: true,
      answers: [{ name: "web1", type: "A", data: "192.168.65.3" }],
    });
    expect(layer.resolve({ name: "WEB1.", type: "AAAA" })).toMatchObject({ rcode: "NOERROR", answers: [] });
    expect(layer.resolve({ name: "3.65.168.192.in-addr.arpa", type: "PTR" })).toMatchObject({
      answers: [{ type: "PTR", data: "web1" }],
    });
  });

  it("answers only single-label host names: a guest cannot claim a real domain name", () => {
    const hostile = leaseLayer(() => [
      { mac: "02:00:00:00:00:05", ip: "192.168.65.5", hostname: "github.com", expiresAt: 1, static: false },
      { mac: "02:00:00:00:00:06", ip: "192.168.65.6", hostname: "bad name", expiresAt: 1, static: false },
    ]);
    expect(hostile.resolve({ name: "github.com", type: "A" })).toBeUndefined();
    expect(hostile.resolve({ name: "bad name", type: "A" })).toBeUndefined();
    expect(hostile.resolve({ name: "5.65.168.192.in-addr.arpa", type: "PTR" })).toBeUndefined();
    expect(hostile.resolve({ name: "6.65.168.192.in-addr.arpa", type: "PTR" })).toBeUndefined();
  });

  it("passes on names and addresses without a named lease", () => {
    expect(layer.resolve({ name: "web2", type: "A" })).toBeUndefined();
    expect(layer.resolve({ name: "4.65.168.192.in-addr.arpa", type: "PTR" })).toBeUndefined();
  });
});
