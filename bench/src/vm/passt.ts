/**
 * passt, pasta's VM sibling: listens on a unix socket that qemu's stream netdev connects to, and
 * serves DHCP with the address plan given. Run as root (`--runas 0`) in the foreground so its
 * PID is the traffic carrier. Like pasta of this build (2023-03) it maps the gateway address to
 * the host's loopback (no `--map-host-loopback` yet), so the guest dials its gateway.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Daemon, waitUntil } from "../proc.js";
import type { VmPeer, VmPeerSession } from "./peer.js";

const guest = "10.0.2.100";
const gateway = "10.0.2.2";

export const passt: VmPeer = {
  name: "passt",
  addressPlan: `DHCP ${guest}/24, gw ${gateway}; host loopback = gw ${gateway} (gateway mapped to host, the default)`,
  async start(mtu, opts): Promise<VmPeerSession> {
    const socket = join(opts.dir, "passt.sock");
    const args = ["--runas", "0", "--foreground", "--stderr", "--quiet", "--ipv4-only", "--one-off"];
    args.push("--socket", socket, "--mtu", String(mtu));
    args.push("--address", guest, "--netmask", "24", "--gateway", gateway);
    // No port forwarding: the benchmark only dials out of the guest.
    args.push("-t", "none", "-u", "none");
    const d = new Daemon("passt", args);
    try {
      await waitUntil(async () => existsSync(socket), 10_000, "passt: socket", d.exited);
    } catch (err) {
      await d.stop(1000);
      throw new Error(`${(err as Error).message} (${d.logTail() || "no output"})`);
    }
    return {
      netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${socket}`,
      hostAddress: gateway,
      pid: d.pid,
      stop: () => d.stop(),
    };
  },
};
