/** desktopd's daemon (`desktopd run --netns NAME --configure`), started with node from apps/desktopd/dist. */
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getJson } from "../control.js";
import type { HostAddress } from "../family.js";
import { Daemon } from "../proc.js";
import type { Peer, PeerSession } from "./peer.js";

/** Starts `desktopd run ARGS` and waits for its ready line (the netns and the VM modes both). */
export async function startDesktopd(
  opts: { root: string; cpuProf: boolean },
  runArgs: readonly string[],
): Promise<PeerSession> {
  const cli = join(opts.root, "apps/desktopd/dist/cli.js");
  if (!existsSync(cli)) throw new Error(`${cli} not found (run npm run build)`);
  // As bin/desktopd.js and `npm start` run it.
  const nodeArgs: string[] = ["--max-semi-space-size=4"];
  if (opts.cpuProf) {
    const dir = join(opts.root, "bench/results/prof");
    mkdirSync(dir, { recursive: true });
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${dir}`);
  }
  const d = new Daemon(process.execPath, [...nodeArgs, cli, "run", ...runArgs]);
  let note: string;
  try {
    note = await d.waitForLine((l) => l.startsWith("desktopd ready"), 15_000, "desktopd");
  } catch (err) {
    await d.stop(2000);
    throw err;
  }
  return {
    hostAddress: { 4: "192.168.65.254", 6: ipv6HostAddress(note) },
    pid: d.pid,
    note,
    // The profile is written when node exits, so allow a longer grace period with --cpu-prof.
    stop: () => d.stop(opts.cpuProf ? 15_000 : 5000),
  };
}

/**
 * The guests' host address over IPv6 (`::254` in the prefix, the host's ::1), from the ready
 * line's `ipv6=fdc4:f303:9324::/64`; a daemon without that field has IPv6 off.
 */
function ipv6HostAddress(readyLine: string): HostAddress {
  const prefix = /(?:^| )ipv6=([0-9a-fA-F:]+)::\/64(?: |$)/.exec(readyLine)?.[1];
  return prefix ? `${prefix}::254` : { unavailable: "desktopd: IPv6 off (no ipv6= on its ready line)" };
}

export const desktopd: Peer = {
  name: "desktopd",
  addressPlan:
    "eth0 192.168.65.3/24, gw 192.168.65.1; host loopback = 192.168.65.254; IPv6 fdc4:f303:9324::3/64, gw the router's link-local; host loopback (::1) = fdc4:f303:9324::254",
  guestAddress: "192.168.65.3",
  async start(netns, mtu, opts) {
    // As slirp4netns and pasta run here: no automatic forwards (iperf3 -s in the guest must not take the host's port).
    const args = ["--netns", netns, "--configure", "--mtu", String(mtu), "--no-autoforward"];
    for (const f of opts.forwards) args.push("--publish", `127.0.0.1:${f.hostPort}:${f.guestPort}`);
    // A control socket of the session's own, for the V8 heap (GET /v1/status, `process.heapUsed`).
    const control = join(tmpdir(), `${netns}.desktopd.sock`);
    args.push("--control", control);
    const session = await startDesktopd(opts, args);
    return { ...session, heapUsed: () => heapUsed(control) };
  },
};

async function heapUsed(control: string): Promise<number> {
  const status = (await getJson(control, "/v1/status")) as { process?: { heapUsed?: number } };
  const bytes = status.process?.heapUsed;
  if (typeof bytes !== "number") throw new Error("desktopd status: no process.heapUsed");
  return bytes;
}
