/**
 * `--configure`: gives the guest what a DHCP client would have set up — its address, the
 * default route via the gateway, and `lo` — so a namespace works without running one; with
 * IPv6 on, a static address in the prefix and the default route through the router too.
 */
import { ip } from "./exec.js";

export interface GuestAddressing {
  netns: string;
  ifname: string;
  address: string;
  prefixLength: number;
  gateway: string;
  mtu: number;
  /** With IPv6 on: a static address in the prefix and the router's link-local address. */
  ipv6?: { address: string; gatewayLinkLocal: string };
}

/** The `ip` invocations, in order. `replace` makes a rerun on the same namespace harmless. */
export function guestConfigCommands(g: GuestAddressing): string[][] {
  return [
    ["-n", g.netns, "link", "set", "lo", "up"],
    ["-n", g.netns, "link", "set", g.ifname, "mtu", String(g.mtu), "up"],
    ["-n", g.netns, "addr", "replace", `${g.address}/${g.prefixLength}`, "dev", g.ifname],
    ["-n", g.netns, "route", "replace", "default", "via", g.gateway, "dev", g.ifname],
    // Usable at once: no duplicate address detection to wait for (the router defends its own).
    ...(g.ipv6
      ? [
          ["-n", g.netns, "-6", "addr", "replace", `${g.ipv6.address}/64`, "dev", g.ifname, "nodad"],
          [
            "-n",
            g.netns,
            "-6",
            "route",
            "replace",
            "default",
            "via",
            g.ipv6.gatewayLinkLocal,
            "dev",
            g.ifname,
          ],
        ]
      : []),
  ];
}

/** The guest's static IPv6 address: the prefix with the IPv4 address's last octet, as fdc4:f303:9324::3. */
export function staticIpv6Address(prefix: string, ipv4: string): string {
  const base = prefix.replace(/\/64$/, "").replace(/::$/, "");
  const last = Number(ipv4.split(".").pop());
  return `${base}::${last.toString(16)}`;
}

export async function configureGuest(g: GuestAddressing): Promise<void> {
  for (const args of guestConfigCommands(g)) await ip(args);
}
