/**
 * pasta (passt) run as root (`--runas 0`), in the foreground, attached to a named netns. It
 * configures the namespace side itself (`--config-net`). This passt build (2023-03) has no
 * `--map-host-loopback` nor `--map-guest-addr`: instead the gateway address is mapped to the
 * host's loopback unless `--no-map-gw` is given, so the guest reaches 127.0.0.1 by dialling its
 * IPv4 gateway and ::1 by dialling its IPv6 gateway. An explicit address plan (both families)
 * keeps the guest off the host's own addresses. It turns IPv6 off by itself when the host has
 * no IPv6 default route ("No external routable interface for IPv6"); the IPv6 rows then say so.
 */

import type { HostAddress } from "../family.js";
import { hasAddressAndRoute, hasDefaultRoute, netnsPath } from "../netns.js";
import { Daemon, waitUntil } from "../proc.js";
import type { Peer, PeerSession } from "./peer.js";

const guest = "10.0.2.100";
const gateway = "10.0.2.2";
/** A unique-local /64 of the bench's own, not the host's. */
const guest6 = "fd3b:2f7c:8e1a::100";
const gateway6 = "fd3b:2f7c:8e1a::2";

const noIpv6 =
  "pasta: the host has no IPv6 default route, and this pasta (2023-03) turns IPv6 off without one";

export const pasta: Peer = {
  name: "pasta",
  addressPlan: `eth0 ${guest}/24, gw ${gateway}; host loopback = gw ${gateway} (gateway mapped to host, the default); IPv6 ${guest6}/64, gw ${gateway6}; host loopback (::1) = gw ${gateway6}`,
  guestAddress: guest,
  async start(netns, mtu, opts): Promise<PeerSession> {
    const ipv6 = await hasDefaultRoute(6);
    const args = [
      "--runas",
      "0",
      "--foreground",
      "--stderr",
      "--quiet",
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
      ...(ipv6 ? ["--address", guest6, "--gateway", gateway6] : ["--ipv4-only"]),
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
    const hostAddress6: HostAddress = ipv6 ? gateway6 : { unavailable: noIpv6 };
    return { hostAddress: { 4: gateway, 6: hostAddress6 }, pid: d.pid, stop: () => d.stop() };
  },
};
