/**
 * `npm run bench:dns`: queries per second with dnsperf against desktopd's DNS server
 * (@desktopd/dns, standalone, in this process) and dnsmasq, in the same run, on the same
 * upstream: a cached name (answered by the upstream once, then from the cache) and a fixed name
 * (host.docker.internal). Loopback only; prints a table with desktopd/dnsmasq ratios.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os, { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { createDnsServer } from "@desktopd/dns";
import { type Dnsmasq, startDnsmasq } from "@desktopd/dns/testing";
import { dnsperf, type QpsFigure } from "./dns/dnsperf.js";
import { killAllChildren } from "./proc.js";

const root = fileURLToPath(new URL("../../", import.meta.url));
const HOST_ADDRESS = "192.168.65.254";

const cases = [
  { name: "cached name", query: "name.test A" },
  { name: "fixed name", query: "host.docker.internal A" },
] as const;

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { duration: { type: "string", default: "5" } } });
  const seconds = Number(values.duration);
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 120) {
    process.stderr.write("usage: npm run bench:dns -- [--duration SECONDS (1..120, default 5)]\n");
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), "dtd-bench-dns-"));
  const started: Dnsmasq[] = [];
  try {
    // The shared upstream, and dnsmasq as the peer: forwarding to it, caching, host.docker.internal fixed.
    const upstream = await startDnsmasq([
      "--local=/test/",
      "--local-ttl=3600",
      "--address=/name.test/1.2.3.4",
    ]);
    started.push(upstream);
    const peer = await startDnsmasq([
      `--server=${upstream.host}#${upstream.port}`,
      `--address=/host.docker.internal/${HOST_ADDRESS}`,
      "--cache-size=1000",
    ]);
    started.push(peer);
    const ours = await createDnsServer({
      hostAddress: HOST_ADDRESS,
      host: { mode: "nameservers", nameservers: [{ host: upstream.host, port: upstream.port }] },
      server: { queryLogSize: 0 },
      listen: { host: "127.0.0.1", port: 0 },
    });
    try {
      const rows: { name: string; desktopd: QpsFigure; dnsmasq: QpsFigure }[] = [];
      for (const c of cases) {
        // Warm both caches with one short run, then measure each in turn.
        await dnsperf(dir, ours.host, ours.port, c.query, 1);
        await dnsperf(dir, peer.host, peer.port, c.query, 1);
        const desktopd = await dnsperf(dir, ours.host, ours.port, c.query, seconds);
        process.stderr.write(`[${c.name}] desktopd ${show(desktopd)} q/s\n`);
        const dnsmasq = await dnsperf(dir, peer.host, peer.port, c.query, seconds);
        process.stderr.write(`[${c.name}] dnsmasq ${show(dnsmasq)} q/s\n`);
        rows.push({ name: c.name, desktopd, dnsmasq });
      }
      process.stdout.write(
        `\n${table(rows)}\n\ndnsperf -c 4 -q 100, ${seconds} s per cell, UDP over loopback\n`,
      );
      const results = join(root, "bench/results");
      mkdirSync(results, { recursive: true });
      const path = join(results, `dns-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
      writeFileSync(
        path,
        `${JSON.stringify({ seconds, host: { cpus: os.cpus().length, node: process.version }, rows }, null, 2)}\n`,
      );
      process.stdout.write(`results: ${path}\n`);
    } finally {
      await ours.close();
    }
    return 0;
  } finally {
    for (const d of started) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function show(f: QpsFigure): string {
  return f.qps === null ? `fail (${f.error})` : `${Math.round(f.qps)}${f.lost ? ` (${f.lost} lost)` : ""}`;
}

function table(rows: { name: string; desktopd: QpsFigure; dnsmasq: QpsFigure }[]): string {
  const lines = [["queries/s", "desktopd", "dnsmasq", "desktopd/dnsmasq"]];
  for (const r of rows) {
    const ratio =
      r.desktopd.qps !== null && r.dnsmasq.qps ? `${(r.desktopd.qps / r.dnsmasq.qps).toFixed(2)}×` : "–";
    lines.push([r.name, show(r.desktopd), show(r.dnsmasq), ratio]);
  }
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines.map((l) => l.map((cell, i) => cell.padEnd(widths[i]!)).join("  ")).join("\n");
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench:dns: ${(err as Error)?.stack ?? String(err)}\n`);
    killAllChildren();
    process.exit(1);
  },
);
