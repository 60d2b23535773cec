/**
 * `--configure`: gives the guest what a DHCP client would have set up — its address, the
 * default route via the gateway, and `lo` — so a namespace works without running one.
 */
import { ip } from "./exec.js";

export interface GuestAddressing {
  netns: string;
  ifname: string;
  address: string;
  prefixLength: number;
  gateway: string;
  mtu: number;
}

/** The `ip` invocations, in order. `replace` makes a rerun on the same namespace harmless. */
export function guestConfigCommands(g: GuestAddressing): string[][] {
  return [
    ["-n", g.netns, "link", "set", "lo", "up"],
    ["-n", g.netns, "link", "set", g.ifname, "mtu", String(g.mtu), "up"],
    ["-n", g.netns, "addr", "replace", `${g.address}/${g.prefixLength}`, "dev", g.ifname],
    ["-n", g.netns, "route", "replace", "default", "via", g.gateway, "dev", g.ifname],
  ];
}

export async function configureGuest(g: GuestAddressing): Promise<void> {
  for (const args of guestConfigCommands(g)) await ip(args);
}
