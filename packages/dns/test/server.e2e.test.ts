/**
 * The standalone server against real clients and real upstreams: dig (bind9-dnsutils) and c-ares
 * query it; dnsmasq on private loopback addresses is the upstream (through a resolv.conf this test
 * writes), the split-horizon server, and the reference whose answers ours must match.
 */
import { createSocket, type Socket } from "node:dgram";
import { Resolver } from "node:dns/promises";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { haveRootAndNetns, missingCommands, skipBecause } from "@desktopd/stack/testing";
import * as packet from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDnsServer, type DnsServer } from "../src/index.js";
import { type Dnsmasq, dig, loopbackAddress, startDnsmasq } from "../src/testing/index.js";

const env = haveRootAndNetns();
const tools = !skipBecause(missingCommands("dnsmasq", "dig"));
const big = Array.from({ length: 20 }, (_, i) => `chunk-${i}-${"x".repeat(40)}`);
const huge = Array.from({ length: 40 }, (_, i) => `chunk-${i}-${"y".repeat(40)}`);

/** The upstream: the "internet" of these tests, answering only names it defines. */
function upstreamArgs(address: string): string[] {
  return [
    "--local=/test/",
    "--local=/example/",
    "--local-ttl=300",
    `--address=/name.test/${address}`,
    "--host-record=host.test,10.1.1.1,fd00::1",
    "--cname=alias.test,host.test",
    "--txt-record=txt.test,hello world,two",
    "--srv-host=_http._tcp.name.test,web.test,80,1,2",
    "--mx-host=mail.test,mx.test,5",
    `--txt-record=big.test,${big.join(",")}`,
    `--txt-record=huge.test,${huge.join(",")}`,
    "--address=/corp.example/10.0.0.1",
  ];
}

describe.skipIf(!env.ok || !tools)("standalone server with dnsmasq upstreams", () => {
  let upstream: Dnsmasq;
  let upstream2: Dnsmasq;
  let corp: Dnsmasq;
  let refused: Dnsmasq;
  let reference: Dnsmasq;
  let silent: Socket;
  let closedHost: string;
  let server: DnsServer;
  let dir: string;
  let resolvConf: string;
  const ours = (args: string[]) => dig(server.host, server.port, args);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dtd-dns-"));
    upstream = await startDnsmasq(upstreamArgs("1.2.3.4"));
    upstream2 = await startDnsmasq(upstreamArgs("5.6.7.8"));
    // The VPN's view of corp.example: different answers from the public one.
    corp = await startDnsmasq(
      [
        "--local=/corp.example/",
        "--address=/wiki.corp.example/10.200.0.1",
        "--txt-record=_info.corp.example,vpn-only",
      ],
      undefined,
      5354,
    );
    refused = await startDnsmasq([]);
    // An address of this process's own where nothing ever listens: a port freed on 127.0.0.1
    // could be taken again by another socket of the machine before the query.
    closedHost = loopbackAddress();
    silent = createSocket("udp4");
    await new Promise<void>((resolve) => silent.bind(0, "127.0.0.1", resolve));
    // The reference: dnsmasq forwarding to the same servers as ours.
    reference = await startDnsmasq([
      `--server=${upstream.host}`,
      `--server=/corp.example/${corp.host}#${corp.port}`,
    ]);
    resolvConf = join(dir, "resolv.conf");
    await writeFile(resolvConf, `# test\nnameserver ${upstream.host}\n`);
    server = await createDnsServer({
      hostAddress: "192.168.65.254",
      gatewayAddress: "192.168.65.1",
      records: [
        { name: "*.test.internal", type: "A", data: "10.0.0.7" },
        { name: "svc.test.internal", type: "SRV", data: { port: 8080, target: "db.test.internal" } },
        { name: "up.test.internal", type: "CNAME", data: "name.test" },
      ],
      registry: { subnets: ["192.168.65.0/24"] },
      forward: [
        { domain: "corp.example", servers: [{ host: corp.host, port: corp.port }] },
        { domain: "refused.example", servers: [{ host: refused.host, port: refused.port }] },
        { domain: "silent.example", servers: [{ host: "127.0.0.1", port: silent.address().port }] },
        { domain: "closed.example", servers: [{ host: closedHost, port: 53 }] },
      ],
      host: { mode: "nameservers", resolvConfPath: resolvConf },
      timeoutMs: 1000,
      listen: { host: "127.0.0.1", port: 0 },
    });
  });

  afterAll(async () => {
    await server?.close();
    silent?.close();
    for (const d of [upstream, upstream2, corp, refused, reference]) await d?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const compared: [string, string[]][] = [
    ["A", ["name.test"]],
    ["NODATA", ["name.test", "AAAA"]],
    ["NXDOMAIN", ["nope.test"]],
    ["NXDOMAIN, other type", ["nope.test", "MX"]],
    ["CNAME chain", ["alias.test", "A"]],
    ["AAAA", ["host.test", "AAAA"]],
    ["TXT", ["txt.test", "TXT"]],
    ["SRV", ["_http._tcp.name.test", "SRV"]],
    ["MX", ["mail.test", "MX"]],
    ["TXT near 1 KB", ["big.test", "TXT"]],
    ["split horizon A", ["wiki.corp.example"]],
    ["split horizon TXT", ["_info.corp.example", "TXT"]],
    ["split horizon NXDOMAIN", ["gone.corp.example"]],
  ];

  it.each(compared)("answers %s like dnsmasq, over UDP and TCP", async (_what, args) => {
    const want = await dig(reference.host, reference.port, args);
    expect(want.status, want.raw).not.toBe("NONE");
    for (const transport of [[], ["+tcp"]]) {
      const got = await ours([...transport, ...args]);
      expect({ status: got.status, answers: got.answers }, got.raw).toEqual({
        status: want.status,
        answers: want.answers,
      });
      expect(got.flags).toEqual(expect.arrayContaining(["qr", "rd", "ra"]));
    }
  });

  it("serves fixed names, wildcards and the registry with PTR, authoritatively", async () => {
    const host = await ours(["host.docker.internal"]);
    expect([host.status, host.answers, host.flags.includes("aa")]).toEqual([
      "NOERROR",
      ["host.docker.internal. A 192.168.65.254"],
      true,
    ]);
    expect((await ours(["+tcp", "gateway.docker.internal"])).answers).toEqual([
      "gateway.docker.internal. A 192.168.65.1",
    ]);
    expect((await ours(["x.test.internal"])).answers).toEqual(["x.test.internal. A 10.0.0.7"]);
    expect((await ours(["svc.test.internal", "SRV"])).answers).toEqual([
      "svc.test.internal. SRV 0 0 8080 db.test.internal.",
    ]);
    expect(server.handler.queryLog().at(-1)).toMatchObject({
      name: "svc.test.internal",
      type: "SRV",
      layer: "fixed",
      transport: "udp",
      answers: ["SRV 0 0 8080 db.test.internal"],
    });
    expect((await ours(["host.docker.internal", "AAAA"])).answers).toEqual([]);
    // A fixed alias of an upstream name: the chain is finished through the upstream.
    const up = await ours(["up.test.internal"]);
    expect([up.answers, up.flags.includes("aa")]).toEqual([
      ["name.test. A 1.2.3.4", "up.test.internal. CNAME name.test."],
      false,
    ]);

    server.registry.register("web.containers.internal", "192.168.65.7");
    expect((await ours(["web.containers.internal"])).answers).toEqual([
      "web.containers.internal. A 192.168.65.7",
    ]);
    expect((await ours(["-x", "192.168.65.7"])).answers).toEqual([
      "7.65.168.192.in-addr.arpa. PTR web.containers.internal.",
    ]);
    expect((await ours(["-x", "192.168.65.99"])).status).toBe("NXDOMAIN");
    server.registry.remove("web.containers.internal");
    // Removed, the name falls through to the upstream, which refuses a zone it does not serve:
    // a refusal by every upstream is SERVFAIL, never a made-up NXDOMAIN.
    expect((await ours(["web.containers.internal"])).status).toBe("SERVFAIL");
  });

  it("answers split-horizon names from the domain's server, not the host's", async () => {
    expect((await dig(upstream.host, upstream.port, ["wiki.corp.example"])).answers).toEqual([
      "wiki.corp.example. A 10.0.0.1",
    ]);
    expect((await ours(["wiki.corp.example"])).answers).toEqual(["wiki.corp.example. A 10.200.0.1"]);
    const entry = server.handler.queryLog().findLast((e) => e.name === "wiki.corp.example");
    expect(entry).toMatchObject({ layer: "forward", rcode: "NOERROR", answers: ["A 10.200.0.1"] });
    // The log records how long it took (a number; its size belongs to the benchmark).
    expect(Number.isFinite(entry?.latencyMs)).toBe(true);
  });

  it("truncates beyond 512 bytes without EDNS, and the client's TCP retry gets it all", async () => {
    const tc = await ours(["+noedns", "+ignore", "big.test", "TXT"]);
    expect(tc.flags).toContain("tc");
    expect(tc.answers).toEqual([]);
    const retried = await ours(["+noedns", "big.test", "TXT"]);
    expect(retried.flags).not.toContain("tc");
    expect(retried.answers[0]).toContain("chunk-19");
  });

  it("falls back to TCP when the upstream truncates, and serves the whole answer over TCP", async () => {
    const viaTcp = await ours(["+tcp", "huge.test", "TXT"]);
    expect(viaTcp.status).toBe("NOERROR");
    expect(viaTcp.answers[0]).toContain("chunk-39");
    expect((await ours(["+ignore", "huge.test", "TXT"])).flags).toContain("tc");
  });

  it("caches answers and negative answers", async () => {
    await ours(["cache.name.test"]);
    const second = await ours(["cache.name.test"]);
    expect(second.answers).toEqual(["cache.name.test. A 1.2.3.4"]);
    await ours(["negative.test"]);
    expect((await ours(["negative.test"])).status).toBe("NXDOMAIN");
    const log = server.handler.queryLog();
    expect(log.filter((e) => e.name === "cache.name.test").map((e) => e.cached)).toEqual([false, true]);
    expect(log.filter((e) => e.name === "negative.test").map((e) => [e.rcode, e.cached])).toEqual([
      ["NXDOMAIN", false],
      ["NXDOMAIN", true],
    ]);
  });

  it("answers SERVFAIL when the upstream is silent past the timeout, refuses, or is not there", async () => {
    const silentAnswer = await ours(["+timeout=10", "www.silent.example"]);
    expect(silentAnswer.status).toBe("SERVFAIL");
    expect((await ours(["www.refused.example", "TXT"])).status).toBe("SERVFAIL");
    expect((await ours(["www.closed.example", "SRV"])).status).toBe("SERVFAIL");
    const failures = server.handler
      .queryLog()
      .filter((e) => /(silent|refused|closed)\.example$/.test(e.name));
    expect(failures.map((e) => e.error)).toEqual([
      expect.stringContaining("timed out"),
      expect.stringContaining("REFUSED"),
      expect.stringContaining("ECONNREFUSED"),
    ]);
  });

  it("re-reads the host's resolv.conf when it changes, without a restart", async () => {
    expect((await ours(["name.test"])).answers).toEqual(["name.test. A 1.2.3.4"]);
    await writeFile(resolvConf, `nameserver ${upstream2.host}\n`);
    let answers: string[] = [];
    for (let i = 0; i < 50 && answers[0] !== "name.test. A 5.6.7.8"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      answers = (await ours(["name.test"])).answers;
    }
    expect(answers).toEqual(["name.test. A 5.6.7.8"]);
    expect(server.hostLayer?.nameservers()).toEqual([{ host: upstream2.host, port: 53 }]);
    await writeFile(resolvConf, `nameserver ${upstream.host}\n`);
  });

  it("counts malformed datagrams, answers FORMERR where it can, and keeps answering", async () => {
    const sock = createSocket("udp4");
    const replies: Buffer[] = [];
    sock.on("message", (m) => replies.push(m));
    const send = (b: Buffer) =>
      new Promise<void>((resolve, reject) =>
        sock.send(b, server.port, server.host, (e) => (e ? reject(e) : resolve())),
      );
    const before = server.handler.counters().malformed;
    const q = packet.encode({ type: "query", id: 0x4242, questions: [{ name: "name.test", type: "A" }] });
    await send(Buffer.from("not dns"));
    await send(q.subarray(0, 20));
    await send(Buffer.from([0x42, 0x43, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]));
    await send(packet.encode({ type: "query", id: 0x4244, questions: [] }));
    await send(
      packet.encode({
        type: "query",
        id: 0x4245,
        questions: [
          { name: "a.test", type: "A" },
          { name: "b.test", type: "A" },
        ],
      }),
    );
    for (let i = 0; i < 50 && replies.length < 4; i++) await new Promise((r) => setTimeout(r, 20));
    sock.close();
    expect(replies.map((r) => [r.readUInt16BE(0), r.readUInt16BE(2) & 0x800f])).toEqual(
      expect.arrayContaining([
        [0x4242, 0x8001],
        [0x4243, 0x8001],
        [0x4244, 0x8001],
        [0x4245, 0x8001],
      ]),
    );
    const after = server.handler.counters().malformed;
    expect((after.short ?? 0) - (before.short ?? 0)).toBe(1);
    expect((after.undecodable ?? 0) - (before.undecodable ?? 0)).toBe(2);
    expect((after.questions ?? 0) - (before.questions ?? 0)).toBe(2);

    // Over TCP a frame too short for a header closes that connection only.
    const conn = connect(server.port, server.host);
    conn.write(Buffer.from([0, 3, 1, 2, 3]));
    await new Promise((resolve) => conn.on("close", resolve));
    expect(server.handler.counters().malformed["tcp-framing"]).toBe(1);
    expect((await ours(["+tcp", "host.docker.internal"])).status).toBe("NOERROR");
    expect((await ours(["name.test"])).answers).toEqual(["name.test. A 1.2.3.4"]);
  });

  it("keeps many queries in flight (c-ares, 300 at once)", async () => {
    const resolver = new Resolver({ timeout: 5000, tries: 1 });
    resolver.setServers([`${server.host}:${server.port}`]);
    const names = Array.from({ length: 300 }, (_, i) => (i % 2 ? `n${i}.test.internal` : `n${i}.name.test`));
    const results = await Promise.allSettled(names.map((n) => resolver.resolve4(n)));
    const wrong = results.flatMap((r, i) =>
      r.status === "fulfilled" && r.value[0] === (i % 2 ? "10.0.0.7" : "1.2.3.4") ? [] : [[names[i], r]],
    );
    expect(wrong, JSON.stringify(server.handler.counters())).toEqual([]);
    expect(server.handler.counters().inflight).toBe(0);
  });
});
