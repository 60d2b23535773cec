/**
 * Traffic from the host into each guest through published ports: the namespace's httpd (`-p` at
 * start) and the VM's (published with `desktopd publish add`, relayed by the namespace guest).
 * A download of a known file, and a batch of short connections, each in a loop.
 */
import { run } from "../proc.js";
import { judgeBatch } from "./batch.js";
import { lane } from "./lane.js";
import { blobSize, smallBody } from "./netns-guest.js";
import type { Tally } from "./tally.js";

export interface PublishedGuest {
  /** "netns" or "vm": the checks are named publish-<name>-download and publish-<name>-churn. */
  name: string;
  hostPort: number;
  blobSha: string;
  /** Connections per churn batch (fewer for the VM: each one crosses TCG twice). */
  churn: number;
}

export function publishTrafficLanes(
  guests: PublishedGuest[],
  tally: Tally,
  running: () => boolean,
): Promise<void>[] {
  return guests.flatMap((g) => {
    const base = `http://127.0.0.1:${g.hostPort}`;
    const download = `publish-${g.name}-download`;
    const churn = `publish-${g.name}-churn`;
    return [
      lane(tally, download, running, 300, async () => {
        const r = await host(`curl -sS --fail --max-time 60 ${base}/blob | sha256sum`, 90_000);
        const sha = r.stdout.split(/\s+/)[0];
        if (r.code !== 0) tally.fail(download, "failed", `exit ${r.code}: ${r.stderr.trim()}`);
        else if (sha === g.blobSha) tally.ok(download, 1, blobSize);
        else tally.fail(download, "wrong", `sha ${sha}, want ${g.blobSha}`);
      }),
      lane(tally, churn, running, 300, async () => {
        const urls = Array.from({ length: g.churn }, () => `${base}/small`).join(" ");
        const r = await host(`curl -sS --max-time 30 -H 'Connection: close' ${urls}`, 60_000);
        judgeBatch(tally, churn, r, Array(g.churn).fill(smallBody.trim()), r.stdout.split("\n"));
      }),
    ];
  });
}

function host(script: string, timeoutMs: number) {
  return run("bash", ["-o", "pipefail", "-c", script], timeoutMs);
}
