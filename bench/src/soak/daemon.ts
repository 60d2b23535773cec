/**
 * The one desktopd of the soak: the netns guest on its TAP, the VM on its qemu stream socket,
 * the control API on a unix socket (the `process` section of GET /v1/status is sampled), DNS
 * with a fixed record and dnsmasq as upstream.
 */

import { join } from "node:path";
import type { ProcessStats } from "desktopd";
import { onCleanup } from "../cleanup.js";
import { getJson } from "../control.js";
import { Daemon, runOk } from "../proc.js";
import { fixedRecord } from "./dns-check.js";

/** `--udp-timeout` and `--udp-stream-timeout` of the soak's daemon (the defaults are 120 and 180 s). */
export const udpTimeoutSeconds = 20;

export interface SoakDaemon {
  readonly process: Daemon;
  readonly cli: string;
  readonly control: string;
  readonly qemuSocket: string;
  /** Key=value fields of the ready line (gateway, host, address, ...). */
  readonly info: Record<string, string>;
  status(): Promise<DaemonStatus>;
  /** `desktopd publish add SPEC --control PATH`, the command-line way. */
  publishAdd(spec: string): Promise<void>;
}

/** The parts of GET /v1/status the soak reads. */
export interface DaemonStatus {
  process?: ProcessStats;
  counters?: { tcp?: { open?: number }; udp?: { open?: number } };
}

export interface SoakDaemonOptions {
  root: string;
  dir: string;
  netns: string;
  upstream: string;
  /** `-p` specs given at start. */
  publish: string[];
  nodeOptions: string[];
}

export async function startSoakDaemon(o: SoakDaemonOptions): Promise<SoakDaemon> {
  const cli = join(o.root, "apps/desktopd/dist/cli.js");
  const control = join(o.dir, "control.sock");
  const qemuSocket = join(o.dir, "qemu.sock");
  const args = [...o.nodeOptions, cli, "run", "--netns", o.netns, "--configure"];
  args.push("--qemu-socket", qemuSocket, "--control", control);
  args.push("--dns-upstream", o.upstream, "--dns-record", fixedRecord);
  for (const spec of o.publish) args.push("--publish", spec);
  // Short UDP timeouts: flows expire (and their close path runs) all run long, and their
  // population settles early enough to be judged even in a 1-minute run.
  args.push("--udp-timeout", String(udpTimeoutSeconds), "--udp-stream-timeout", String(udpTimeoutSeconds));
  // Warnings and errors only: per-connection info lines would make the log the soak's bottleneck.
  args.push("--log-level", "warn");
  const d = new Daemon(process.execPath, args);
  onCleanup(`desktopd pid ${d.pid}`, () => d.stop(10_000));
  const line = await d.waitForLine((l) => l.startsWith("desktopd ready"), 30_000, "desktopd");
  const info: Record<string, string> = {};
  for (const field of line.trim().split(/\s+/).slice(2)) {
    const eq = field.indexOf("=");
    if (eq > 0) info[field.slice(0, eq)] = field.slice(eq + 1);
  }
  return {
    process: d,
    cli,
    control,
    qemuSocket,
    info,
    status: () => getJson(control, "/v1/status") as Promise<DaemonStatus>,
    publishAdd: async (spec) => {
      await runOk(process.execPath, [cli, "publish", "add", spec, "--control", control], 15_000);
    },
  };
}
