/**
 * desktopd's daemon serving one VM: `desktopd run --qemu-socket P` for qemu's stream netdev
 * (length-prefixed frames over a unix stream), `--vfkit-socket P` for its dgram netdev (one
 * frame per unix datagram, vfkit's framing).
 */
import { join } from "node:path";
import { startDesktopd } from "../peers/desktopd.js";
import type { VmPeer, VmPeerSession, VmPeerStartOptions } from "./peer.js";

const hostLoopback = "192.168.65.254";
const addressPlan = `DHCP in 192.168.65.0/24, gw 192.168.65.1; host loopback = ${hostLoopback}`;

async function start(
  transport: "stream" | "dgram",
  mtu: number,
  opts: VmPeerStartOptions,
): Promise<VmPeerSession> {
  const socket = join(opts.dir, `desktopd-${transport}.sock`);
  const listen = transport === "stream" ? "--qemu-socket" : "--vfkit-socket";
  const session = await startDesktopd(opts, [listen, socket, "--mtu", String(mtu)]);
  const netdev =
    transport === "stream"
      ? `stream,id=n0,server=off,addr.type=unix,addr.path=${socket}`
      : `dgram,id=n0,local.type=unix,local.path=${join(opts.dir, "qemu-dgram.sock")},remote.type=unix,remote.path=${socket}`;
  return { ...session, netdev, hostAddress: hostLoopback };
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
