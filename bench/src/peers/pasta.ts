/**
 * pasta (passt) run as root (`--runas 0`), in the foreground, attached to a named netns. It
 * configures the namespace side itself (`--config-net`). This passt build (2023-03) has no
 * `--map-host-loopback`: instead the gateway address is mapped to the host's loopback unless
 * `--no-map-gw` is given, so the guest reaches 127.0.0.1 by dialling its gateway. An explicit
 * address plan keeps the guest off the host's own addresses.
 */

import { hasAddressAndRoute, netnsPath } from "../netns.js";
import { Daemon, waitUntil } from "../proc.js";
import type { Peer, PeerSession } from "./peer.js";

const guest = "10.0.2.100";
const gateway = "10.0.2.2";

export const pasta: Peer = {
  name: "pasta",
  addressPlan: `eth0 ${guest}/24, gw ${gateway}; host loopback = gw ${gateway} (gateway mapped to host, the default)`,
  guestAddress: guest,
  async start(netns, mtu, opts): Promise<PeerSession> {
    const args = [
      "--runas",
      "0",
      "--foreground",
      "--stderr",
      "--quiet",
      "--ipv4-only",
      "--config-net",
      "--netns",
      netnsPath(netns),
      "--mtu",
      String(mtu),
      "--address",
      guest,
      "--netmask",
      "24",
      "--gateway",
      gateway,
      // Only the benchmark's host → guest forwards; nothing from the namespace to the host.
      ...(opts.forwards.length > 0
        ? opts.forwards.flatMap((f) => ["-t", `127.0.0.1/${f.hostPort}:${f.guestPort}`])
        : ["-t", "none"]),
      "-u",
      "none",
      "-T",
      "none",
      "-U",
      "none",
    ];
    const d = new Daemon("pasta", args);
    try {
      await waitUntil(() => hasAddressAndRoute(netns, guest), 10_000, "pasta: guest address", d.exited);
    } catch (err) {
      await d.stop(1000);
      throw new Error(`${(err as Error).message} (${d.logTail() || "no output"})`);
    }
    return { hostAddress: gateway, pid: d.pid, stop: () => d.stop() };
  },
};
