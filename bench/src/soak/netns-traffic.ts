/**
 * The namespace guest's traffic: one loop per kind, all at once, each a real client run with
 * `ip netns exec` against the host's servers (at the daemon's host address) or its gateway.
 * Every outcome lands in the tally; nothing here throws.
 */
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describeExit, type RunResult } from "../proc.js";
import { judgeBatch } from "./batch.js";
import { dnsQueries, dnsVerdict, parseDigBatch } from "./dns-check.js";
import { lane } from "./lane.js";
import type { NetnsGuest } from "./netns-guest.js";
import { seededSha } from "./seeded.js";
import type { Tally } from "./tally.js";

export interface NetnsTrafficTargets {
  hostAddress: string;
  gateway: string;
  httpPort: number;
  udpEchoPort: number;
  iperfPort: number;
}

const downloadSizes = [64 << 10, 1 << 20, 8 << 20];
const uploadSizes = [64 << 10, 1 << 20, 4 << 20];
const churnPerBatch = 50;
const udpPerBatch = 20;
/** iperf3 -u: a modest rate, a few seconds a run. */
const udpRate = "10M";
const udpSeconds = 3;

export function netnsTrafficLanes(
  guest: NetnsGuest,
  dir: string,
  t: NetnsTrafficTargets,
  tally: Tally,
  running: () => boolean,
): Promise<void>[] {
  const base = `http://${t.hostAddress}:${t.httpPort}`;
  const uploads = uploadSizes.map((size, i) => {
    const path = join(dir, `upload-${i}`);
    const data = randomBytes(size);
    writeFileSync(path, data);
    return { path, size, sha: createHash("sha256").update(data).digest("hex") };
  });
  let n = 0;
  const next = () => n++;

  return [
    lane(tally, "netns-download", running, 200, async () => {
      const i = next();
      const size = downloadSizes[i % downloadSizes.length]!;
      const seed = i % 8;
      const r = await guest.sh(
        `curl -sS --fail --max-time 60 ${base}/bytes/${size}/${seed} | sha256sum`,
        90_000,
      );
      const sha = r.stdout.split(/\s+/)[0];
      if (r.code !== 0) tally.fail("netns-download", "failed", describeExit(r));
      else if (sha === seededSha(size, seed)) tally.ok("netns-download", 1, size);
      else tally.fail("netns-download", "wrong", `${size} B seed ${seed}: sha ${sha}`);
    }),
    lane(tally, "netns-upload", running, 200, async () => {
      const u = uploads[next() % uploads.length]!;
      const r = await guest.sh(
        `curl -sS --fail --max-time 60 -H 'Expect:' -T ${u.path} ${base}/upload`,
        90_000,
      );
      const [sha, bytes] = r.stdout.trim().split(/\s+/);
      if (r.code !== 0) tally.fail("netns-upload", "failed", describeExit(r));
      else if (sha === u.sha && Number(bytes) === u.size) tally.ok("netns-upload", 1, u.size);
      else tally.fail("netns-upload", "wrong", `sent ${u.size} B, host got ${bytes} B sha ${sha}`);
    }),
    lane(tally, "netns-churn", running, 200, async () => {
      const token = `n${next()}`;
      const urls = Array.from({ length: churnPerBatch }, (_, i) => `${base}/hello/${token}-${i}`);
      // "Connection: close": one TCP connection per URL.
      const r = await guest.sh(`curl -sS --max-time 30 -H 'Connection: close' ${urls.join(" ")}`, 60_000);
      judgeBatch(
        tally,
        "netns-churn",
        r,
        urls.map((_, i) => `hello ${token}-${i}`),
        r.stdout.split("\n"),
      );
    }),
    lane(tally, "netns-dns", running, 200, async () => {
      const queries = dnsQueries(`n${next()}`, t.hostAddress);
      const args = queries.map((q) => `${q.name} A`).join(" ");
      const r = await guest.sh(`dig @${t.gateway} +tries=1 +timeout=5 ${args}`, 60_000);
      const got = parseDigBatch(r.stdout);
      for (const q of queries) {
        const v = dnsVerdict(q.want, got.get(q.name));
        if (v === "ok") tally.ok("netns-dns");
        else
          tally.fail("netns-dns", v, `${q.name}: want ${q.want}, got ${got.get(q.name) ?? describeExit(r)}`);
      }
    }),
    lane(tally, "netns-udp", running, 200, async () => {
      const token = `n${next()}`;
      // A line every 20 ms (each its own datagram) on one flow; socat waits 2 s for the last echoes.
      const script =
        `for i in $(seq 1 ${udpPerBatch}); do echo ${token}-$i; sleep 0.02; done | ` +
        `socat -t 2 - UDP:${t.hostAddress}:${t.udpEchoPort}`;
      const r = await guest.sh(script, 60_000);
      const want = Array.from({ length: udpPerBatch }, (_, i) => `echo:${token}-${i + 1}`);
      judgeBatch(tally, "netns-udp", r, want, r.stdout.split("\n"));
    }),
    lane(tally, "netns-iperf3-udp", running, 500, async () => {
      const args = `-c ${t.hostAddress} -p ${t.iperfPort} -u -b ${udpRate} -t ${udpSeconds} --json`;
      const r = await guest.sh(`iperf3 ${args}`, (udpSeconds + 30) * 1000);
      const sum = iperfUdpSum(r.stdout);
      if (r.code !== 0 || !sum)
        tally.fail("netns-iperf3-udp", "failed", sum ? describeExit(r) : iperfError(r));
      else {
        tally.ok("netns-iperf3-udp", 1, sum.bytes);
        tally.note("netns-iperf3-udp", "datagrams", sum.packets);
        tally.note("netns-iperf3-udp", "lost", sum.lost);
      }
    }),
  ];
}

interface UdpSum {
  bytes: number;
  packets: number;
  lost: number;
}

function iperfUdpSum(stdout: string): UdpSum | undefined {
  try {
    const sum = (
      JSON.parse(stdout) as { end?: { sum?: { bytes: number; packets: number; lost_packets: number } } }
    ).end?.sum;
    return sum ? { bytes: sum.bytes, packets: sum.packets, lost: sum.lost_packets } : undefined;
  } catch {
    return undefined;
  }
}

function iperfError(r: RunResult): string {
  try {
    return `iperf3: ${(JSON.parse(r.stdout) as { error?: string }).error ?? describeExit(r)}`;
  } catch {
    return describeExit(r);
  }
}
