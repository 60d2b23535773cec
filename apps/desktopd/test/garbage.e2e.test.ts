/**
 * A hostile guest: random frames, bad IPv4 checksums and headers, bad TCP/UDP/ICMP/ARP,
 * segments outside a live connection's window and a SYN flood (support/garbage.py over an
 * AF_PACKET socket, then hping3 when installed). The daemon must stay up, keep the live
 * connection intact and still serve new connections.
 */
import { fileURLToPath } from "node:url";
import {
  type HostHttpServer,
  haveRootAndNetns,
  missingCommands,
  seededSha256,
  skipBecause,
  startHttpServer,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Guest, q, startGuest } from "./support/guest.js";

const env = haveRootAndNetns();
const GARBAGE_PY = fileURLToPath(new URL("./support/garbage.py", import.meta.url));
const HOST = "192.168.65.254";
const GATEWAY = "192.168.65.1";
const hping3 = env.ok && !skipBecause(missingCommands("hping3"));
if (env.ok && !hping3)
  process.stderr.write("garbage.e2e: hping3 not installed; its SYN flood test is skipped\n");

describe.skipIf(!env.ok)("garbage from the guest", () => {
  let guest: Guest;
  let http: HostHttpServer;
  let url: string;

  beforeAll(async () => {
    http = await startHttpServer();
    url = `http://${HOST}:${http.port}`;
    guest = await startGuest("junk", { configure: true });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
    }
  });

  async function stillServes(tag: string): Promise<void> {
    expect(guest.daemon.alive(), guest.daemon.describe()).toBe(true);
    const hello = await guest.shOk(`curl -sS --fail --max-time 30 ${q(`${url}/hello/${tag}`)}`);
    expect(hello).toBe(`hello ${tag}\n`);
    const size = 4 * 1024 * 1024;
    const sha = await guest.shOk(`curl -sS --fail --max-time 60 ${q(`${url}/bytes/${size}/31`)} | sha256sum`);
    expect(sha.split(" ")[0]).toBe(seededSha256(size, 31));
  }

  it("survives malformed frames, out-of-window segments and a SYN flood", async () => {
    await guest.shOk(`ping -c 1 -W 5 ${GATEWAY}`);
    const gwMac = (await guest.shOk(`ip neigh show ${GATEWAY} dev eth0`)).split(/\s+/)[2];
    expect(gwMac).toMatch(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);

    const r = await guest.ns.exec(
      "python3",
      [
        GARBAGE_PY,
        ...["--ifname", "eth0", "--gw-mac", gwMac!, "--src-ip", "192.168.65.3"],
        ...["--host-ip", HOST, "--gateway", GATEWAY, "--port", String(http.port)],
        ...["--seed", "7", "--count", "300", "--syn-flood", "3000"],
      ],
      { timeoutMs: 90_000 },
    );
    expect(r.code, `${r.stderr}\n${guest.daemon.describe()}`).toBe(0);
    const report = JSON.parse(r.stdout) as {
      sent: Record<string, number>;
      taken_by_stack: number;
      tap_dropped: number;
      stalled: boolean;
      live_connection: string;
    };
    for (const [kind, n] of Object.entries(report.sent)) expect(n, kind).toBeGreaterThan(0);
    // The frames reached the stack: the sender paces itself on the TAP's tx_packets (frames the
    // stack has read), and it never waited in vain. tx_packets also counts the kernel's own packets
    // and the TAP may drop some of those (RSTs answering SYN-ACKs come in bursts), so this is a
    // sanity check, not an exact count.
    const sent = Object.values(report.sent).reduce((a, b) => a + b, 0);
    const summary = JSON.stringify({ ...report, live_connection: undefined });
    expect(report.stalled, `the stack stopped reading frames: ${summary}\n${guest.daemon.describe()}`).toBe(
      false,
    );
    expect(report.taken_by_stack, summary).toBeGreaterThanOrEqual(sent);
    // The connection opened before the garbage was hit by out-of-window segments and RSTs; it must still work.
    expect(report.live_connection).toMatch(/^HTTP\/1\.1 200 /);
    expect(report.live_connection).toContain("hello survivor\n");

    await stillServes("after-garbage");
  });

  it.skipIf(!hping3)("survives an hping3 SYN flood", async () => {
    const r = await guest.sh(`hping3 -q -S -p ${http.port} -i u100 -c 5000 ${HOST}`, 90_000);
    expect(r.stdout + r.stderr).toContain("hping statistic");
    await stillServes("after-hping3");
  });
});
