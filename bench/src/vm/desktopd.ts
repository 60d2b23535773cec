/**
 * desktopd's daemon serving one VM: `desktopd run --qemu-socket P` for qemu's stream netdev
 * (length-prefixed frames over a unix stream), `--vfkit-socket P` for its dgram netdev (one
 * frame per unix datagram, vfkit's framing).
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Daemon } from "../proc.js";
import type { VmPeer, VmPeerSession, VmPeerStartOptions } from "./peer.js";

const hostLoopback = "192.168.65.254";
const addressPlan = `DHCP in 192.168.65.0/24, gw 192.168.65.1; host loopback = ${hostLoopback}`;

async function start(
  transport: "stream" | "dgram",
  mtu: number,
  opts: VmPeerStartOptions,
): Promise<VmPeerSession> {
  const cli = join(opts.root, "apps/desktopd/dist/cli.js");
  if (!existsSync(cli)) throw new Error(`${cli} not found (run npm run build)`);
  const nodeArgs: string[] = [];
  if (opts.cpuProf) {
    const dir = join(opts.root, "bench/results/prof");
    mkdirSync(dir, { recursive: true });
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${dir}`);
  }
  const socket = join(opts.dir, `desktopd-${transport}.sock`);
  const listen = transport === "stream" ? "--qemu-socket" : "--vfkit-socket";
  const d = new Daemon(process.execPath, [...nodeArgs, cli, "run", listen, socket, "--mtu", String(mtu)]);
  let note: string;
  try {
    note = await d.waitForLine((l) => l.startsWith("desktopd ready"), 15_000, "desktopd");
  } catch (err) {
    await d.stop(2000);
    throw err;
  }
  const netdev =
    transport === "stream"
      ? `stream,id=n0,server=off,addr.type=unix,addr.path=${socket}`
      : `dgram,id=n0,local.type=unix,local.path=${join(opts.dir, "qemu-dgram.sock")},remote.type=unix,remote.path=${socket}`;
  // The profile is written when node exits, so allow a longer grace period with --cpu-prof.
  return {
    netdev,
    hostAddress: hostLoopback,
    pid: d.pid,
    note,
    stop: () => d.stop(opts.cpuProf ? 15_000 : 5000),
  };
}

export const desktopdStream: VmPeer = {
  name: "desktopd-stream",
  addressPlan,
  start: (mtu, opts) => start("stream", mtu, opts),
};

export const desktopdDgram: VmPeer = {
  name: "desktopd-dgram",
  addressPlan,
  start: (mtu, opts) => start("dgram", mtu, opts),
};
