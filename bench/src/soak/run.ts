/**
 * One soak: host servers, the namespace guest, the daemon, the VM guest; then every traffic lane
 * at once for the run's duration while the daemon is sampled; then the verdicts. Everything it
 * starts is registered with cleanup.ts, so it goes on any exit.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onCleanup } from "../cleanup.js";
import { freePort } from "../measure/hostserver.js";
import { sleep } from "../proc.js";
import type { SoakOptions } from "./args.js";
import { startSoakDaemon } from "./daemon.js";
import { startHostServers } from "./host-servers.js";
import { judgedMetrics, pointsOf, type Sample } from "./metrics.js";
import {
  createNetnsGuest,
  guestHttpPort,
  guestRelayPort,
  startNetnsHttpd,
  startRelay,
} from "./netns-guest.js";
import { netnsTrafficLanes } from "./netns-traffic.js";
import { runProblems } from "./problems.js";
import { type PublishedGuest, publishTrafficLanes } from "./publish-traffic.js";
import { takeSample } from "./sampler.js";
import { type CheckTally, Tally } from "./tally.js";
import { judge, type Verdict } from "./verdict.js";
import { startVmGuest, vmHttpPort } from "./vm-guest.js";
import { vmTrafficLane } from "./vm-traffic.js";

export interface SoakResult {
  options: SoakOptions;
  started: string;
  daemon: { pid: number; readyLine: Record<string, string>; exit?: string; logTail: string };
  guests: { netns: string; netnsAddress: string; vmAddress?: string; vmConsoleLog?: string };
  samples: Sample[];
  verdicts: Verdict[];
  checks: Record<string, CheckTally>;
  /** Why the run fails; empty when it passes. */
  problems: string[];
  passed: boolean;
}

function log(msg: string): void {
  process.stderr.write(`[soak] ${msg}\n`);
}

export async function runSoak(root: string, o: SoakOptions): Promise<SoakResult> {
  const started = new Date().toISOString();
  const dir = mkdtempSync(join(tmpdir(), "dtd-soak-"));
  onCleanup(`dir ${dir}`, async () => rmSync(dir, { recursive: true, force: true }));

  const servers = await startHostServers();
  const guest = await createNetnsGuest();
  const [nsPort, vmPort] = [await freePort(), await freePort()];
  const daemon = await startSoakDaemon({
    root,
    dir,
    netns: guest.name,
    upstream: servers.upstream,
    publish: [`127.0.0.1:${nsPort}:${guestHttpPort}`],
    nodeOptions: o.nodeOptions,
  });
  const { gateway, host: hostAddress } = daemon.info as { gateway: string; host: string };
  log(`desktopd pid ${daemon.process.pid} ready: netns ${guest.name} ${daemon.info.address}`);
  await startNetnsHttpd(guest, dir);
  const published: PublishedGuest[] = [
    { name: "netns", hostPort: nsPort, blobSha: guest.blobSha, churn: 20 },
  ];
  const vm = o.vm ? await startVmGuest(root, daemon.qemuSocket) : undefined;
  if (vm) {
    log(`VM up: ${vm.address}`);
    await startRelay(guest, vm.address, vmHttpPort);
    await daemon.publishAdd(`127.0.0.1:${vmPort}:${guestRelayPort}`);
    published.push({ name: "vm", hostPort: vmPort, blobSha: vm.blobSha, churn: 5 });
  }

  const tally = new Tally();
  let stopAt = Date.now() + o.duration * 1000;
  let died: string | undefined;
  void daemon.process.exited.then(() => {
    if (stopAt === 0) return;
    died = `desktopd exited during the run (${daemon.process.describeExit()}): ${daemon.process.logTail(20)}`;
    stopAt = 0;
  });
  const running = () => Date.now() < stopAt;
  const targets = { hostAddress, gateway, ...servers };
  log(`traffic for ${o.duration} s, a sample every ${o.interval} s, warm-up ${o.warmup} s`);
  const lanes = [
    ...netnsTrafficLanes(guest, dir, targets, tally, running),
    ...publishTrafficLanes(published, tally, running),
    ...(vm ? [vmTrafficLane(vm.vm, targets, tally, running)] : []),
  ];
  const samples = await sampleUntilStopped(daemon, o, tally, running);
  await Promise.all(lanes);

  // A clean stop is part of the run: the daemon must exit 0 on SIGTERM.
  stopAt = 0;
  let exit: string | undefined;
  if (!died) {
    await daemon.process.stop(15_000);
    const c = daemon.process.child;
    if (c.exitCode !== 0) exit = `desktopd did not exit 0 on SIGTERM (${daemon.process.describeExit()})`;
  }

  const verdicts = judgedMetrics.map((m) => judge(m, pointsOf(samples, m), o.warmup));
  const problems = [
    ...[died, exit].filter((p): p is string => p !== undefined),
    ...runProblems(verdicts, tally, expectedChecks(published, !!vm), samples),
  ];

  return {
    options: o,
    started,
    daemon: { pid: daemon.process.pid, readyLine: daemon.info, exit, logTail: daemon.process.logTail(20) },
    guests: {
      netns: guest.name,
      netnsAddress: daemon.info.address ?? "",
      vmAddress: vm?.address,
      vmConsoleLog: vm?.vm.consoleLog,
    },
    samples,
    verdicts,
    checks: tally.checks,
    problems,
    passed: problems.length === 0,
  };
}

/** A sample at 0, interval, 2×interval... while traffic runs, and one as it ends. */
async function sampleUntilStopped(
  daemon: Awaited<ReturnType<typeof startSoakDaemon>>,
  o: SoakOptions,
  tally: Tally,
  running: () => boolean,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  const t0 = Date.now();
  for (let k = 0; running(); k++) {
    await sleep(Math.max(0, t0 + k * o.interval * 1000 - Date.now()));
    if (!daemon.process.running) break;
    let s: Sample;
    try {
      s = await takeSample(daemon, (Date.now() - t0) / 1000, tally);
    } catch (err) {
      // /proc/PID is gone: the daemon died (reported as such once its exit is seen), or we are exiting.
      await Promise.race([daemon.process.exited, sleep(2000)]);
      if (!daemon.process.running) break;
      throw err;
    }
    samples.push(s);
    log(
      `t=${s.t.toFixed(0)}s rss ${s.rss.toFixed(1)} MiB heap ${s.heapUsed?.toFixed(1) ?? "?"} MiB ` +
        `fds ${s.fds} handles ${s.activeResources ?? "?"} checks ${s.checks} failed ${s.failures}`,
    );
  }
  return samples;
}

/** The checks a run must have made: every lane's. */
function expectedChecks(published: PublishedGuest[], vm: boolean): string[] {
  const kinds = ["download", "upload", "churn", "dns", "udp"];
  const checks = [...kinds.map((k) => `netns-${k}`), "netns-iperf3-udp"];
  for (const g of published) checks.push(`publish-${g.name}-download`, `publish-${g.name}-churn`);
  if (vm) checks.push(...kinds.map((k) => `vm-${k}`));
  return checks;
}
