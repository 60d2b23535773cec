/**
 * Samples the daemon every few seconds: RSS and open fds from /proc (whatever the daemon says),
 * heap and active handles from its status API's `process` section.
 */
import { readdir, readFile } from "node:fs/promises";
import type { SoakDaemon } from "./daemon.js";
import type { Sample } from "./metrics.js";
import type { Tally } from "./tally.js";

const MiB = 1024 * 1024;

export async function takeSample(daemon: SoakDaemon, t: number, tally: Tally): Promise<Sample> {
  const pid = daemon.process.pid;
  const [rss, fds] = await Promise.all([vmRssMiB(pid), readdir(`/proc/${pid}/fd`).then((e) => e.length)]);
  const { attempts, failures } = tally.totals();
  const sample: Sample = {
    t: Math.round(t * 10) / 10,
    rss,
    fds,
    heapUsed: null,
    heapTotal: null,
    external: null,
    arrayBuffers: null,
    activeResources: null,
    tcpOpen: null,
    udpOpen: null,
    checks: attempts,
    failures,
  };
  try {
    const s = await daemon.status();
    const p = s.process;
    if (!p) throw new Error("no process section in /v1/status (an older daemon build?)");
    Object.assign(sample, {
      heapUsed: p.heapUsed / MiB,
      heapTotal: p.heapTotal / MiB,
      external: p.external / MiB,
      arrayBuffers: p.arrayBuffers / MiB,
      activeResources: p.activeResources,
      activeResourcesByType: p.activeResourcesByType,
      tcpOpen: s.counters?.tcp?.open ?? null,
      udpOpen: s.counters?.udp?.open ?? null,
    });
  } catch (err) {
    sample.statusError = (err as Error).message;
  }
  return sample;
}

async function vmRssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}
