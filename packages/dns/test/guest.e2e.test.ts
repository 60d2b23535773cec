/**
 * The gateway binding: a real Linux guest in a network namespace, attached through a TAP to a
 * stack in this process, resolves through DNS on the gateway address (port 53, UDP and TCP) with
 * dig and with its own glibc resolver. Upstreams are dnsmasq on private loopback addresses.
 */
import { mkdir, writeFile } from "node:fs/promises";
import {
  haveRootAndNetns,
  missingCommands,
  type StackGuest,
  skipBecause,
  startStackGuest,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDns, type Dns, gatewayDnsPolicy } from "../src/index.js";
import { type Dnsmasq, dig, startDnsmasq } from "../src/testing/index.js";

const env = haveRootAndNetns();
const tools = !skipBecause(missingCommands("dnsmasq", "dig"));
const GATEWAY = "192.168.65.1";
const big = Array.from({ length: 20 }, (_, i) => `chunk-${i}-${"x".repeat(40)}`);

describe.skipIf(!env.ok || !tools)("DNS on the stack's gateway, from a netns guest", () => {
  let upstream: Dnsmasq;
  let corp: Dnsmasq;
  let dns: Dns;
  let guest: StackGuest;
  const inGuest = (args: string[]) =>
    dig(GATEWAY, 53, args, (argv) => guest.ns.exec(argv[0]!, argv.slice(1)).then((r) => r.stdout + r.stderr));

  beforeAll(async () => {
    upstream = await startDnsmasq([
      "--local=/test/",
      "--address=/name.test/1.2.3.4",
      "--txt-record=txt.test,hello",
      "--srv-host=_http._tcp.name.test,web.test,80",
      "--mx-host=mail.test,mx.test,5",
      `--txt-record=big.test,${big.join(",")}`,
    ]);
    corp = await startDnsmasq(["--local=/corp.example/", "--address=/wiki.corp.example/10.200.0.1"]);
    dns = createDns({
      hostAddress: "192.168.65.254",
      gatewayAddress: GATEWAY,
      records: [{ name: "*.test.internal", type: "A", data: "10.0.0.7" }],
      registry: { subnets: ["192.168.65.0/24"] },
      forward: [{ domain: "corp.example", servers: [{ host: corp.host, port: corp.port }] }],
      host: { mode: "nameservers", nameservers: [{ host: upstream.host, port: upstream.port }] },
      timeoutMs: 2000,
    });
    guest = await startStackGuest({
      prefix: "dns",
      stack: { policy: gatewayDnsPolicy(dns.handler, GATEWAY) },
    });
  });

  afterAll(async () => {
    await guest?.close();
    dns?.close();
    await upstream?.stop();
    await corp?.stop();
  });

  it("answers fixed names over UDP and TCP", async () => {
    for (const t of [[], ["+tcp"]]) {
      const r = await inGuest([...t, "host.docker.internal"]);
      expect([r.status, r.answers], r.raw).toEqual(["NOERROR", ["host.docker.internal. A 192.168.65.254"]]);
    }
    expect((await inGuest(["gateway.docker.internal"])).answers).toEqual([
      "gateway.docker.internal. A 192.168.65.1",
    ]);
    expect((await inGuest(["any.test.internal"])).answers).toEqual(["any.test.internal. A 10.0.0.7"]);
  });

  it("answers registered guest names and their PTR", async () => {
    dns.registry.register("guest.containers.internal", guest.stack.config.firstLease);
    expect((await inGuest(["guest.containers.internal"])).answers).toEqual([
      "guest.containers.internal. A 192.168.65.3",
    ]);
    expect((await inGuest(["-x", "192.168.65.3"])).answers).toEqual([
      "3.65.168.192.in-addr.arpa. PTR guest.containers.internal.",
    ]);
  });

  it("resolves through the host's nameservers and the split-horizon server, every type", async () => {
    expect((await inGuest(["name.test"])).answers).toEqual(["name.test. A 1.2.3.4"]);
    expect((await inGuest(["txt.test", "TXT"])).answers).toEqual(['txt.test. TXT "hello"']);
    expect((await inGuest(["_http._tcp.name.test", "SRV"])).answers).toEqual([
      "_http._tcp.name.test. SRV 0 0 80 web.test.",
    ]);
    expect((await inGuest(["mail.test", "MX"])).answers).toEqual(["mail.test. MX 5 mx.test."]);
    expect((await inGuest(["nope.test"])).status).toBe("NXDOMAIN");
    expect((await inGuest(["wiki.corp.example"])).answers).toEqual(["wiki.corp.example. A 10.200.0.1"]);
  });

  it("truncates over UDP and the guest's retry over TCP through the stack gets the whole answer", async () => {
    const tc = await inGuest(["+noedns", "+ignore", "big.test", "TXT"]);
    expect(tc.flags).toContain("tc");
    const whole = await inGuest(["+noedns", "big.test", "TXT"]);
    expect(whole.answers[0]).toContain("chunk-19");
  });

  it("serves the guest's own resolver (glibc getent via resolv.conf)", async () => {
    await mkdir(`/etc/netns/${guest.ns.name}`, { recursive: true });
    await writeFile(`/etc/netns/${guest.ns.name}/resolv.conf`, `nameserver ${GATEWAY}\n`);
    expect(await guest.sh("getent hosts host.docker.internal")).toMatch(
      /^192\.168\.65\.254\s+host\.docker\.internal/,
    );
    expect(await guest.sh("getent ahostsv4 name.test | head -1")).toMatch(/^1\.2\.3\.4\s/);
  });

  it("answers FORMERR to a malformed datagram from the guest and keeps serving", async () => {
    // Header of a query with no question (id 0x5151), then 5 random bytes (dropped: too short).
    const script = `
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(bytes([1, 2, 3, 4, 5]), ("${GATEWAY}", 53))
s.sendto(bytes([0x51, 0x51, 1, 0] + [0] * 8), ("${GATEWAY}", 53))
r = s.recv(512)
print(r[0:2].hex(), r[3] & 15)`;
    expect((await guest.sh(`python3 -c '${script}'`)).trim()).toBe("5151 1");
    expect(dns.handler.counters().malformed).toMatchObject({ short: 1, questions: 1 });
    expect((await inGuest(["host.docker.internal"])).status).toBe("NOERROR");
  });
});
