/** Named network namespaces (`ip netns`) for the guest, one fresh namespace per peer session. */
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
  const route = await run("ip", ["-n", name, "-4", "route", "show", "default"], 3000);
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
