/**
 * The network-namespace guest: a fresh `dtd-soak-<pid>` namespace, and the servers the host
 * reaches in it through published ports — busybox httpd with a seeded file, and a socat relay to
 * the VM's httpd (the daemon publishes to one guest: the VM is reached through this one).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { seededChunks, seededSha256 } from "@desktopd/stack/testing";
import { onCleanup } from "../cleanup.js";
import { createNetns, deleteNetns } from "../netns.js";
import { Daemon, run, waitUntil } from "../proc.js";

/** Guest ports of the published servers. */
export const guestHttpPort = 8080;
export const guestRelayPort = 8081;
/** The published file: its size, and the small page the connection churn asks for. */
export const blobSize = 1 << 20;
export const smallBody = "soak-small\n";

export interface NetnsGuest {
  name: string;
  blobSha: string;
  /** Runs `bash -o pipefail -c script` in the namespace. */
  sh(script: string, timeoutMs: number): ReturnType<typeof run>;
}

export async function createNetnsGuest(): Promise<NetnsGuest> {
  const name = `dtd-soak-${process.pid}`;
  await createNetns(name);
  onCleanup(`netns ${name}`, () => removeNetns(name));
  return {
    name,
    blobSha: seededSha256(blobSize, 7),
    sh: (script, timeoutMs) =>
      run("ip", ["netns", "exec", name, "bash", "-o", "pipefail", "-c", script], timeoutMs),
  };
}

/** busybox httpd serving /blob (seeded) and /small on guestHttpPort. */
export async function startNetnsHttpd(guest: NetnsGuest, dir: string): Promise<void> {
  const www = join(dir, "www");
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, "blob"), Buffer.concat([...seededChunks(blobSize, 7)]));
  writeFileSync(join(www, "small"), smallBody);
  const httpd = new Daemon("ip", [
    "netns",
    "exec",
    guest.name,
    "busybox",
    "httpd",
    "-f",
    "-p",
    String(guestHttpPort),
    "-h",
    www,
  ]);
  onCleanup("netns httpd", () => httpd.stop());
  await waitForListener(guest, guestHttpPort, httpd);
}

/** socat in the namespace: guestRelayPort → the VM's httpd (one socat child per connection). */
export async function startRelay(guest: NetnsGuest, vmAddress: string, vmPort: number): Promise<void> {
  const relay = new Daemon("ip", [
    "netns",
    "exec",
    guest.name,
    "socat",
    `TCP-LISTEN:${guestRelayPort},fork,reuseaddr`,
    `TCP:${vmAddress}:${vmPort}`,
  ]);
  onCleanup("netns relay", () => relay.stop());
  await waitForListener(guest, guestRelayPort, relay);
}

async function waitForListener(guest: NetnsGuest, port: number, d: Daemon): Promise<void> {
  await waitUntil(
    async () =>
      (
        await run("ip", ["netns", "exec", guest.name, "ss", "-Hltn", `sport = :${port}`], 3000)
      ).stdout.includes(":"),
    10_000,
    `listener on guest port ${port}`,
    d.exited,
  );
}

/** Kills whatever still runs in the namespace (curl, socat children), then deletes it. */
async function removeNetns(name: string): Promise<void> {
  const pids = await run("ip", ["netns", "pids", name], 5000);
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {}
  }
  await deleteNetns(name);
}
