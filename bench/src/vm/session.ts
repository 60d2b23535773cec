/**
 * One VM session: start the peer, boot the test VM (with iperf3) on its netdev, lease an address,
 * measure both directions and the carrier's peak RSS, then power off and stop everything.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootVm, type TestVm } from "@desktopd/stack/testing";
import { onCleanup } from "../cleanup.js";
import { type Figure, failed } from "../measure/figure.js";
import { measurePeakRss } from "../measure/rss.js";
import { guestIperf3, measureVmIperf } from "./iperf.js";
import type { VmMetricKey, VmSessionResult } from "./metrics.js";
import type { VmPeer, VmPeerSession } from "./peer.js";

export interface VmSessionOptions {
  root: string;
  /** Seconds per iperf3 run. */
  duration: number;
  cpuProf: boolean;
}

function log(msg: string): void {
  process.stderr.write(`${msg}\n`);
}

export async function runVmSession(
  peer: VmPeer,
  mtu: number,
  opts: VmSessionOptions,
): Promise<VmSessionResult> {
  const result: VmSessionResult = {
    peer: peer.name,
    mtu,
    addressPlan: peer.addressPlan,
    inQemu: false,
    figures: allFailed(),
  };
  const tag = `[vm ${peer.name} mtu ${mtu}]`;
  const dir = mkdtempSync(join(tmpdir(), "dtd-bench-vm-"));
  const removeDir = onCleanup(`dir ${dir}`, async () => rmSync(dir, { recursive: true, force: true }));
  try {
    let session: VmPeerSession;
    try {
      session = await peer.start(mtu, { root: opts.root, cpuProf: opts.cpuProf, dir });
    } catch (err) {
      return notStarted(result, tag, err);
    }
    const stopPeer = onCleanup(`${peer.name} pid ${session.pid ?? "-"}`, () => session.stop());
    try {
      Object.assign(result, { netdev: session.netdev, hostAddress: session.hostAddress, note: session.note });
      result.inQemu = session.pid === undefined;
      // Registered before the boot settles, so an interrupt during boot still powers qemu off.
      const booting = bootVm({
        name: `bench-${peer.name}-${mtu}`,
        netdev: session.netdev,
        extraBinaries: [guestIperf3],
        bootTimeoutMs: 120_000,
      });
      const closeVm = onCleanup(`vm ${peer.name}`, async () => (await booting.catch(() => null))?.close());
      try {
        let vm: TestVm;
        try {
          vm = await booting;
          result.consoleLog = vm.consoleLog;
          await lease(vm, result);
        } catch (err) {
          return notStarted(result, tag, err);
        }
        log(`${tag} up: guest ${result.guestAddress} mtu ${result.guestMtu}, host at ${session.hostAddress}`);
        const f = result.figures;
        f.g2h = await step(tag, "iperf3 guest→host", () =>
          measureVmIperf(vm, session.hostAddress, opts.duration, false),
        );
        f.h2g = await step(tag, "iperf3 host→guest", () =>
          measureVmIperf(vm, session.hostAddress, opts.duration, true),
        );
        f.peakRss =
          session.pid === undefined
            ? failed("in qemu")
            : await step(tag, "peak RSS MiB", () => measurePeakRss(session.pid!));
      } finally {
        await closeVm();
      }
    } finally {
      await stopPeer();
    }
    return result;
  } finally {
    await removeDir();
  }
}

/** DHCP through the peer (every peer runs a server), then what the guest ended up with. */
async function lease(vm: TestVm, result: VmSessionResult): Promise<void> {
  await vm.sh("udhcpc -i eth0 -q -n -t 10", 90_000);
  const addr = /inet (\S+)/.exec(await vm.sh("ip -4 -o addr show eth0"));
  result.guestAddress = addr?.[1];
  result.guestMtu = Number((await vm.sh("cat /sys/class/net/eth0/mtu")).trim());
}

function notStarted(result: VmSessionResult, tag: string, err: unknown): VmSessionResult {
  result.startError = (err as Error).message;
  result.figures = allFailed(result.startError);
  log(`${tag} start failed: ${result.startError.split("\n")[0]}`);
  return result;
}

async function step(tag: string, what: string, measure: () => Promise<Figure>): Promise<Figure> {
  const f = await measure();
  log(`${tag} ${what}: ${f.value === null ? `fail (${f.error})` : Math.round(f.value * 100) / 100}`);
  return f;
}

function allFailed(error = "not measured"): Record<VmMetricKey, Figure> {
  return { g2h: failed(error), h2g: failed(error), peakRss: failed(error) };
}
