/**
 * A 16 MB transfer in each direction while the guest's kernel drops 3% of TCP packets each
 * way (nftables `numgen random`): the stack's retransmission must deliver every byte.
 */
import {
  downloadScript,
  type HostHttpServer,
  haveRootAndNetns,
  seededSha256,
  startHttpServer,
  uploadScript,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Guest, startGuest } from "./support/guest.js";

const env = haveRootAndNetns();
const SIZE = 16 * 1024 * 1024;
const RULESET = `table inet dtdloss {
  chain pre { type filter hook prerouting priority 0; meta l4proto tcp numgen random mod 100 < 3 counter drop; }
  chain out { type filter hook output priority 0; meta l4proto tcp numgen random mod 100 < 3 counter drop; }
}
`;

/** Packets dropped by each chain, from `nft list table`. */
async function dropped(guest: Guest): Promise<Record<string, number>> {
  const text = await guest.shOk("nft list table inet dtdloss");
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/chain (\w+) \{[^}]*?counter packets (\d+)/g)) counts[m[1]!] = Number(m[2]);
  return counts;
}

describe.skipIf(!env.ok)("3% TCP loss in the guest", () => {
  let guest: Guest;
  let http: HostHttpServer;
  let url: string;

  beforeAll(async () => {
    http = await startHttpServer();
    url = `http://192.168.65.254:${http.port}`;
    guest = await startGuest("loss", { configure: true });
    const r = await guest.ns.exec("nft", ["-f", "-"], { input: RULESET });
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
    }
  });

  it("downloads 16 MB intact", async () => {
    const before = await dropped(guest);
    const out = await guest.shOk(downloadScript(url, SIZE, 21), 180_000);
    expect(out.split(" ")[0]).toBe(seededSha256(SIZE, 21));
    const after = await dropped(guest);
    // The loss really happened, in both directions.
    expect(after.pre).toBeGreaterThan(before.pre ?? 0);
    expect(after.out).toBeGreaterThan(before.out ?? 0);
  }, 200_000);

  it("uploads 16 MB intact", async () => {
    const before = await dropped(guest);
    const out = await guest.shOk(uploadScript(url, SIZE, 22), 180_000);
    expect(out.trim()).toBe(`${seededSha256(SIZE, 22)} ${SIZE}`);
    const after = await dropped(guest);
    expect(after.pre).toBeGreaterThan(before.pre ?? 0);
    expect(after.out).toBeGreaterThan(before.out ?? 0);
  }, 200_000);
});
