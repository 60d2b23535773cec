/** One session: a fresh netns, one peer at one MTU, every measurement in turn, then teardown. */
import { onCleanup } from "./cleanup.js";
import { connrateConcurrency, measureConnrate } from "./measure/connrate.js";
import { type Figure, failed } from "./measure/figure.js";
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
import type { MetricKey, SessionResult } from "./metrics.js";
import { createNetns, deleteNetns, mtuOf } from "./netns.js";
import type { Peer } from "./peers/index.js";

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
      log(
        `${tag} up: pid ${session.pid}, guest mtu ${result.guestMtu ?? "?"}, host at ${session.hostAddress}`,
      );
      const host = session.hostAddress;
      const short = Math.min(3, opts.duration);
      const f = result.figures;
      f.g2h = await step(tag, "iperf3 guest→host", () => measureIperf(netns, host, opts.duration, false));
      f.h2g = await step(tag, "iperf3 host→guest", () => measureIperf(netns, host, opts.duration, true));
      f.connRate = await step(tag, `connect+close x${connrateConcurrency}`, () =>
        measureConnrate(opts.root, netns, host, short),
      );
      const rr = await measureRr(opts.root, netns, host, short);
      f.rrMedian = rr.median;
      f.rrP99 = rr.p99;
      log(`${tag} 1-byte RR: ${show(rr.median)} / p99 ${show(rr.p99)}`);
      f.fwdH2g = await step(tag, "forwarded iperf3 host→guest", () =>
        measureForwardIperf(netns, iperfPort, opts.duration),
      );
      f.fwdConnRate = await step(tag, `forwarded connect+close x${connrateConcurrency}`, () =>
        measureForwardConnrate(opts.root, netns, acceptPort, short),
      );
      f.peakRss = await step(tag, "peak RSS MiB", () => measurePeakRss(session.pid));
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

async function step(tag: string, what: string, measure: () => Promise<Figure>): Promise<Figure> {
  const f = await measure();
  log(`${tag} ${what}: ${show(f)}`);
  return f;
}

function show(f: Figure): string {
  return f.value === null ? `fail (${f.error})` : String(Math.round(f.value * 100) / 100);
}

function allFailed(error = "not measured"): Record<MetricKey, Figure> {
  const f = (): Figure => failed(error);
  return {
    g2h: f(),
    h2g: f(),
    connRate: f(),
    rrMedian: f(),
    rrP99: f(),
    fwdH2g: f(),
    fwdConnRate: f(),
    peakRss: f(),
  };
}
