/** Named network namespaces (`ip netns`) for the guest, one fresh namespace per peer session. */
import type { Family } from "./family.js";
import { run, runOk } from "./proc.js";

export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

export async function createNetns(name: string): Promise<void> {
  await runOk("ip", ["netns", "add", name], 5000);
  // Widen the guest's ephemeral range: the connection-rate test opens thousands of short
  // connections and the guest (the active closer) keeps each in TIME_WAIT.
  await runOk(
    "ip",
    ["netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=1024 65535"],
    5000,
  );
  // And bound those: tens of thousands of them slow the guest's own connect() (2800 to 650 per s
  // over three runs, for every peer), and the faster a peer, the more it would pay for that.
  await runOk("ip", ["netns", "exec", name, "sysctl", "-q", "-w", "net.ipv4.tcp_max_tw_buckets=1000"], 5000);
  await runOk("ip", ["-n", name, "link", "set", "lo", "up"], 5000);
}

/** Deletes the namespace; quietly does nothing if it is already gone. */
export async function deleteNetns(name: string): Promise<void> {
  await run("ip", ["netns", "delete", name], 5000);
}

/** True once `address` is assigned in the namespace and a default route exists. */
export async function hasAddressAndRoute(name: string, address: string): Promise<boolean> {
  const addr = await run("ip", ["-n", name, "-4", "-o", "addr", "show"], 3000);
  if (!addr.stdout.includes(` ${address}/`)) return false;
  return hasDefaultRoute(4, name);
}

/**
 * True once the namespace has a global address of the family that is past duplicate address
 * detection (a static one, or one SLAAC formed) and a default route of the family.
 */
export async function hasRoutableAddress(name: string, family: Family): Promise<boolean> {
  const addr = await run("ip", ["-n", name, `-${family}`, "-o", "addr", "show", "scope", "global"], 3000);
  const usable = addr.stdout
    .split("\n")
    .some((l) => l.includes(" inet") && !/ (tentative|dadfailed)\b/.test(l));
  return usable && hasDefaultRoute(family, name);
}

/** True if the namespace (the host's own without one) has a default route of the family. */
export async function hasDefaultRoute(family: Family, name?: string): Promise<boolean> {
  const netns = name === undefined ? [] : ["-n", name];
  const route = await run("ip", [...netns, `-${family}`, "route", "show", "default"], 3000);
  return route.stdout.includes("default");
}

/** The MTU of the interface holding `address` in the namespace, or undefined. */
export async function mtuOf(name: string, address: string): Promise<number | undefined> {
  const addr = await run("ip", ["-n", name, "-4", "-o", "addr", "show"], 3000);
  const line = addr.stdout.split("\n").find((l) => l.includes(` ${address}/`));
  const ifname = line?.split(/\s+/)[1];
  if (!ifname) return undefined;
  const link = await run("ip", ["-n", name, "-o", "link", "show", "dev", ifname], 3000);
  const m = /\bmtu (\d+)/.exec(link.stdout);
  return m ? Number(m[1]) : undefined;
}
