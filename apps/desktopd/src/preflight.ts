/**
 * Checks for the conditions a user must fix before `run` can work. Done up front so the user
 * gets one clear line instead of an errno from deep inside the TAP code.
 */
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { NetnsNotFoundError, NotRootError, TunUnavailableError } from "./errors.js";

/** Where `ip netns add` pins named namespaces. */
export const NETNS_RUN_DIR = "/run/netns";
export const TUN_DEVICE = "/dev/net/tun";

export function checkRoot(euid: number | undefined = process.geteuid?.()): void {
  // Opening a TAP inside another namespace needs CAP_NET_ADMIN there and setns (CAP_SYS_ADMIN).
  if (euid !== 0)
    throw new NotRootError("root is required to create a network device in a namespace (try sudo)");
}

export async function checkTun(device = TUN_DEVICE): Promise<void> {
  try {
    await access(device, constants.R_OK | constants.W_OK);
  } catch {
    throw new TunUnavailableError(
      `${device} is missing or not accessible (load the tun module: modprobe tun)`,
    );
  }
}

export async function netnsExists(netns: string, runDir = NETNS_RUN_DIR): Promise<boolean> {
  try {
    await access(join(runDir, netns));
    return true;
  } catch {
    return false;
  }
}

export async function checkNetns(netns: string, runDir = NETNS_RUN_DIR): Promise<void> {
  if (!(await netnsExists(netns, runDir))) throw new NetnsNotFoundError(netns);
}
