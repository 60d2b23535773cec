/** One session: a fresh netns, one peer at one MTU, every measurement in turn, then teardown. */
import { onCleanup } from "./cleanup.js";
import { type Family, families, familySuffix, type HostAddress } from "./family.js";
import { connrateConcurrency, measureConnrate } from "./measure/connrate.js";
import { type Figure, failed } from "./measure/figure.js";
import { flowCount, measureFlows } from "./measure/flows.js";
import {
  GUEST_ACCEPT_PORT,
  GUEST_IPERF_PORT,
  measureForwardConnrate,
  measureForwardIperf,
} from "./measure/forward.js";
import { freePort } from "./measure/hostserver.js";
import { measureIperf } from "./measure/iperf.js";
import { measureRr } from "./measure/rr.js";
import { measurePeakRss } from "./measure/rss.js";
import { measureUdp, udpOffered } from "./measure/udp.js";
import {
  familyKey,
  heapMetricKeys,
  type LoopbackMetricKey,
  loopbackMetricKeys,
  type MetricKey,
  metrics,
  type SessionResult,
} from "./metrics.js";
import { createNetns, deleteNetns, hasRoutableAddress, mtuOf } from "./netns.js";
import type { Peer } from "./peers/index.js";
import { waitUntil } from "./proc.js";

export interface SessionOptions {
  root: string;
  /** Seconds per iperf3 run. */
  duration: number;
  cpuProf: boolean;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

export async function runSession(peer: Peer, mtu: number, opts: SessionOptions): Promise<SessionResult> {
  const netns = `dtd-bench-${peer.name}-${process.pid}-${mtu}`;
  const result: SessionResult = {
    peer: peer.name,
    mtu,
    netns,
    addressPlan: peer.addressPlan,
    figures: allFailed(),
  };
  const tag = `[${peer.name} mtu ${mtu}]`;
  log(`${tag} netns ${netns}`);
  const removeNetns = onCleanup(`netns ${netns}`, () => deleteNetns(netns));
  try {
    await createNetns(netns);
    // Host → guest forwards every peer sets up at start, on ports free a moment ago.
    const iperfPort = await freePort();
    const acceptPort = await freePort();
    const forwards = [
      { hostPort: iperfPort, guestPort: GUEST_IPERF_PORT },
      { hostPort: acceptPort, guestPort: GUEST_ACCEPT_PORT },
    ];
    let session: Awaited<ReturnType<Peer["start"]>>;
    try {
      session = await peer.start(netns, mtu, { root: opts.root, cpuProf: opts.cpuProf, forwards });
    } catch (err) {
      result.startError = (err as Error).message;
      result.figures = allFailed(result.startError);
      log(`${tag} start failed: ${result.startError}`);
      return result;
    }
    const stopPeer = onCleanup(`${peer.name} pid ${session.pid}`, () => session.stop());
    try {
      result.hostAddress = session.hostAddress;
      result.note = session.note;
      if (session.note) log(`${tag} ${session.note}`);
      result.guestMtu = await mtuOf(netns, peer.guestAddress);
      const hosts = families.map((family) => describeHost(session.hostAddress[family]));
      log(
        `${tag} up: pid ${session.pid}, guest mtu ${result.guestMtu ?? "?"}, host at ${hosts.join(" and ")}`,
      );
      const short = Math.min(3, opts.duration);
      const f = result.figures;
      for (const family of families) {
        const run: LoopbackRun = { ...opts, tag: `${tag}${familySuffix(family)}`, netns, family, short };
        const figures = await measureLoopback(run, session.hostAddress[family]);
        for (const key of loopbackMetricKeys) f[familyKey(key, family)] = figures[key];
      }
      f.fwdH2g = await step(tag, "forwarded iperf3 host→guest", () =>
        measureForwardIperf(netns, iperfPort, opts.duration),
      );
      f.fwdConnRate = await step(tag, `forwarded connect+close x${connrateConcurrency}`, () =>
        measureForwardConnrate(opts.root, netns, acceptPort, short),
      );
      const host4 = session.hostAddress[4];
      if (typeof host4 === "string") await measureUdpRows(f, tag, netns, host4, short);
      // Before the flows, so that it stays the peak of the traffic above.
      f.peakRss = await step(tag, "peak RSS MiB", () => measurePeakRss(session.pid));
      if (!session.heapUsed) {
        const reason = `V8 heap rows: ${peer.name} is not a node process`;
        result.unavailable = Object.fromEntries(heapMetricKeys.map((k) => [k, reason]));
      }
      if (typeof host4 === "string") {
        const flows = await measureFlows(opts.root, netns, host4, session, short);
        const heap = session.heapUsed
          ? `; V8 heap idle ${show(flows.flowsIdleHeap)} (${show(flows.flowsPerFlowHeap)} KiB each), busy ${show(flows.flowsBusyHeap)}`
          : "";
        const rss = `idle RSS MiB ${show(flows.flowsIdleRss)} (${show(flows.flowsPerFlowRss)} KiB each), busy ${show(flows.flowsBusyRss)}`;
        log(`${tag} ${flowCount} flows: ${rss}${heap}`);
        Object.assign(f, flows);
      }
    } finally {
      await stopPeer();
    }
    return result;
  } catch (err) {
    result.startError = (err as Error).message;
    result.figures = allFailed(result.startError);
    return result;
  } finally {
    await removeNetns();
  }
}

/** UDP at 1 Gbit/s offered, guest→host then host→guest (IPv4): received rate and loss. */
async function measureUdpRows(
  f: Record<MetricKey, Figure>,
  tag: string,
  netns: string,
  host: string,
  seconds: number,
): Promise<void> {
  const directions = [
    [false, "udpG2h", "udpG2hLoss"],
    [true, "udpH2g", "udpH2gLoss"],
  ] as const;
  for (const [reverse, rate, loss] of directions) {
    const u = await measureUdp(netns, host, seconds, reverse);
    const what = reverse ? "host→guest" : "guest→host";
    log(
      `${tag} UDP ${what} ${udpOffered.bitrate}bit/s offered: ${show(u.rate)} Mbit/s, loss ${show(u.loss)} %`,
    );
    f[rate] = u.rate;
    f[loss] = u.loss;
  }
}

interface LoopbackRun extends SessionOptions {
  tag: string;
  netns: string;
  family: Family;
  /** Seconds of the connection-rate and RR runs. */
  short: number;
}

/** The loopback metrics over one family: the guest dials the host's 127.0.0.1 or ::1 at `host`. */
async function measureLoopback(
  run: LoopbackRun,
  host: HostAddress,
): Promise<Record<LoopbackMetricKey, Figure>> {
  const { tag, netns, family, root, short } = run;
  if (typeof host !== "string") {
    log(`${tag} not measured: ${host.unavailable}`);
    return failedFigures(loopbackMetricKeys, host.unavailable);
  }
  try {
    // IPv4 is ready once the peer is; an IPv6 address may still be forming (SLAAC) or in DAD.
    const what = `guest IPv${family} address and default route`;
    await waitUntil(() => hasRoutableAddress(netns, family), 10_000, what);
  } catch (err) {
    log(`${tag} ${(err as Error).message}`);
    return failedFigures(loopbackMetricKeys, (err as Error).message);
  }
  const g2h = await step(tag, "iperf3 guest→host", () =>
    measureIperf(netns, family, host, run.duration, false),
  );
  const h2g = await step(tag, "iperf3 host→guest", () =>
    measureIperf(netns, family, host, run.duration, true),
  );
  const connRate = await step(tag, `connect+close x${connrateConcurrency}`, () =>
    measureConnrate(root, netns, family, host, short),
  );
  const rr = await measureRr(root, netns, family, host, short);
  log(`${tag} 1-byte RR: ${show(rr.median)} / p99 ${show(rr.p99)}`);
  return { g2h, h2g, connRate, rrMedian: rr.median, rrP99: rr.p99 };
}

function describeHost(host: HostAddress): string {
  return typeof host === "string" ? host : "(none)";
}

async function step(tag: string, what: string, measure: () => Promise<Figure>): Promise<Figure> {
  const f = await measure();
  log(`${tag} ${what}: ${show(f)}`);
  return f;
}

function show(f: Figure): string {
  return f.value === null ? `fail (${f.error})` : String(Math.round(f.value * 100) / 100);
}

function allFailed(error = "not measured"): Record<MetricKey, Figure> {
  return failedFigures(
    metrics.map((m) => m.key),
    error,
  );
}

function failedFigures<K extends string>(keys: readonly K[], error: string): Record<K, Figure> {
  return Object.fromEntries(keys.map((k) => [k, failed(error)])) as Record<K, Figure>;
}
