/**
 * Prometheus metrics: a running daemon (in-process, VM sockets only, no root) scraped over its
 * control socket and its loopback TCP port, the exposition parsed; the stack's and DNS's real
 * counters flow into it.
 */
import dgram from "node:dgram";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDns } from "@desktopd/dns";
import { frameHarness } from "@desktopd/stack/testing";
import packet from "dns-packet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DaemonHandle, runDaemon } from "../src/daemon.js";
import { createDaemonMetrics } from "../src/metrics.js";
import { parseExposition, sampleValue, sumOf } from "./support/prometheus.js";

function get(options: {
  socketPath?: string;
  url?: string;
  method?: string;
}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const target = options.url ? new URL(options.url) : undefined;
    const req = request(
      {
        socketPath: options.socketPath,
        host: target?.hostname.replace(/^\[|\]$/g, "") ?? "desktopd",
        port: target?.port,
        path: target?.pathname ?? "/metrics",
        method: options.method ?? "GET",
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }),
        );
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("metrics of a running daemon", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-metrics-"));
  let handle: DaemonHandle;

  beforeAll(async () => {
    handle = await runDaemon({
      qemuSocket: [join(dir, "vm.sock")],
      control: join(dir, "control.sock"),
      metrics: "127.0.0.1:0",
      publish: ["127.0.0.1:0:80"],
      dnsUpstream: "127.0.0.1:9",
    });
  });
  afterAll(async () => {
    await handle?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("serves the same families on loopback TCP and on the control socket, with HELP and TYPE", async () => {
    const url = handle.ready.metrics!;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const tcp = await get({ url });
    const unix = await get({ socketPath: handle.ready.control! });
    for (const r of [tcp, unix]) {
      expect(r.status).toBe(200);
      expect(r.type).toContain("text/plain; version=0.0.4");
    }
    const families = parseExposition(tcp.body);
    expect([...parseExposition(unix.body).keys()].sort()).toEqual([...families.keys()].sort());
    for (const [name, f] of families) {
      expect(f.help, name).toBeTruthy();
      expect(f.type, name).toMatch(/^(counter|gauge|histogram|summary)$/);
      if (f.type === "counter") expect(name).toMatch(/_total$/);
    }
    for (const name of [
      "process_resident_memory_bytes",
      "process_open_fds",
      "nodejs_eventloop_lag_seconds",
      "nodejs_heap_size_used_bytes",
      "desktopd_flows_open",
      "desktopd_tcp_buffer_bytes",
      "desktopd_dns_query_duration_seconds",
    ]) {
      expect(families.has(name), name).toBe(true);
    }
    expect(sampleValue(families, "desktopd_flows_open", { protocol: "tcp" })).toBe(0);
    expect(sampleValue(families, "desktopd_tcp_time_wait", {})).toBe(0);
    expect(sampleValue(families, "desktopd_tcp_buffer_bytes", { kind: "budget" })).toBe(256 * 1024 * 1024);
    expect(
      sampleValue(families, "desktopd_published_connections_open", { id: handle.forwarder.list()[0]!.id }),
    ).toBe(0);
  });

  it("counts a published port's failed dials (no guest has the address)", async () => {
    const forward = handle.forwarder.list()[0]!;
    const client = createConnection(forward.hostPort, "127.0.0.1");
    // The forwarder resets the client when the dial fails; `once` would reject on that error.
    client.on("error", () => {});
    await new Promise((r) => client.on("close", r));
    let failures: number | undefined;
    for (let i = 0; i < 100 && !failures; i++) {
      failures = sampleValue(
        parseExposition((await get({ url: handle.ready.metrics! })).body),
        "desktopd_published_dial_failures_total",
        { id: forward.id },
      );
      if (!failures) await new Promise((r) => setTimeout(r, 100));
    }
    expect(failures).toBe(1);
  });

  it("answers 404 beside /metrics and 405 to anything but GET", async () => {
    const base = handle.ready.metrics!;
    expect((await get({ url: base.replace("/metrics", "/other") })).status).toBe(404);
    expect((await get({ url: base, method: "POST" })).status).toBe(405);
    expect((await get({ socketPath: handle.ready.control!, method: "POST" })).status).toBe(405);
  });
});

describe("metrics from a real stack and DNS server", () => {
  it("reflect guest flows and DNS answers, with a cumulative latency histogram", async () => {
    const echo = dgram.createSocket("udp4");
    echo.on("message", (m, r) => echo.send(m, r.port, r.address));
    echo.bind(0, "127.0.0.1");
    await once(echo, "listening");
    const h = frameHarness();
    const dns = createDns({ records: [{ name: "web.test", type: "A", data: "10.0.0.1" }], host: false });
    const metrics = createDaemonMetrics({
      links: () => [
        {
          name: "qemu:/tmp/vm.sock#1",
          stats: { framesIn: 3, framesOut: 2, bytesIn: 300, bytesOut: 200, drops: { oversize: 1 } },
        },
      ],
      stack: () => h.stack.counters(),
      published: () => [],
      dns: () => dns.handler.counters(),
    });
    try {
      h.guest("02:00:00:00:00:0a", "192.168.65.3").udp(
        h.config.hostAddress,
        5353,
        echo.address().port,
        Buffer.from("hi"),
      );
      await h.settle();
      const query = packet.encode({ type: "query", id: 1, questions: [{ type: "A", name: "web.test" }] });
      for (let i = 0; i < 3; i++) {
        await dns.handler.handle(query, "192.168.65.3:1000", "udp");
      }
      for (const e of dns.handler.queryLog()) metrics.observeDnsQuery(e);
      const families = parseExposition(await metrics.text());
      expect(sampleValue(families, "desktopd_flows_opened_total", { protocol: "udp" })).toBe(1);
      expect(sampleValue(families, "desktopd_flows_open", { protocol: "udp" })).toBe(1);
      expect(sampleValue(families, "desktopd_udp_datagrams_total", { direction: "from_guest" })).toBe(1);
      expect(
        sampleValue(families, "desktopd_link_drops_total", {
          link: "qemu:/tmp/vm.sock#1",
          reason: "oversize",
        }),
      ).toBe(1);
      expect(
        sampleValue(families, "desktopd_link_received_bytes_total", { link: "qemu:/tmp/vm.sock#1" }),
      ).toBe(300);
      // Repeats may be replayed from the response cache: counted apart, by `cached`.
      expect(
        sumOf(families, "desktopd_dns_queries_total", {
          layer: "fixed",
          rcode: "NOERROR",
          transport: "udp",
        }),
      ).toBe(3);
      const buckets = families
        .get("desktopd_dns_query_duration_seconds")!
        .samples.filter((s) => s.name.endsWith("_bucket") && s.labels.layer === "fixed");
      const counts = buckets.map((b) => b.value);
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
      expect(buckets.at(-1)!.labels.le).toBe("+Inf");
      expect(counts.at(-1)).toBe(3);
      expect(sampleValue(families, "desktopd_dns_query_duration_seconds_count", { layer: "fixed" })).toBe(3);
    } finally {
      await h.close();
      dns.close();
      echo.close();
    }
  });
});
