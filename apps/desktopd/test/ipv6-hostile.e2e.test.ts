/**
 * A hostile guest over IPv6, as raw frames on its NIC (support/hostile6.py): SYNs from thousands
 * of made-up addresses of the prefix, fragments that never complete, and malformed packets of
 * every kind. Each is counted by reason, memory and tables stay bounded, and the guest's real
 * traffic (IPv6 and IPv4) carries on.
 */
import { fileURLToPath } from "node:url";
import {
  closedTcpPort,
  type HostHttpServer,
  haveRootAndNetns,
  missingCommands,
  seededSha256,
  skipBecause,
  startHttpServer,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "./support/cli.js";
import { type Guest, q, startGuest } from "./support/guest.js";
import { untilSteady } from "./support/settle.js";

const HOSTILE6 = fileURLToPath(new URL("./support/hostile6.py", import.meta.url));
const env = haveRootAndNetns();
const ready = env.ok && !skipBecause(missingCommands("python3", "curl", "dig"));
const HOST6 = "fdc4:f303:9324::254";
const GUEST6 = "fdc4:f303:9324::3";

describe.skipIf(!ready)("a hostile guest over IPv6", () => {
  let guest: Guest;
  let http: HostHttpServer;
  let gwMac: string;

  const status = async () =>
    JSON.parse((await cli("status", "--json", "--control", guest.daemon.info.control!)).out);

  beforeAll(async () => {
    http = await startHttpServer({ host: "::1" });
    guest = await startGuest("hostile6", { configure: true });
    await guest.shOk(`ping -6 -c 1 -W 5 ${HOST6}`);
    gwMac = (await guest.shOk(`ip -6 neigh show ${HOST6} dev eth0`)).split(/\s+/)[2]!;
  });

  afterAll(async () => {
    await guest?.close();
    await http?.close();
  });

  /** The daemon is up and carries the guest's IPv6 (a checked download, DNS) and IPv4 as before. */
  async function stillServes(tag: string): Promise<void> {
    expect(guest.daemon.alive(), guest.daemon.describe()).toBe(true);
    const size = 2 * 1024 * 1024;
    const sha = await guest.shOk(
      `curl -sS -g --fail --max-time 60 ${q(`http://[${HOST6}]:${http.port}/bytes/${size}/${tag.length}`)} | sha256sum`,
    );
    expect(sha.split(" ")[0], tag).toBe(seededSha256(size, tag.length));
    const aaaa = await guest.shOk("dig +short +time=5 +tries=2 @fdc4:f303:9324::1 host.docker.internal AAAA");
    expect(aaaa.trim(), tag).toBe(HOST6);
    expect((await guest.sh("ping -c 1 -W 5 192.168.65.1")).code, tag).toBe(0);
  }

  it("SYNs from 5,000 made-up addresses: the guest keeps at most 64 of them, the table and the flows stay bounded", async () => {
    const port = await closedTcpPort("::1");
    const out = await guest.shOk(
      `python3 ${q(HOSTILE6)} syn-flood eth0 ${gwMac} fdc4:f303:9324:: ${HOST6} ${port} 5000`,
      120_000,
    );
    expect(JSON.parse(out).sent).toBe(5000);
    // Wait until the stack has read what reached it (the TAP's queue drops some of a flood).
    const s = await untilSteady(status, (x) => x.counters.tcp.refused + x.counters.tcp.pendingConnects);
    expect(s.counters.ipv6.neighbours).toBeLessThanOrEqual(64);
    expect(s.counters.ipv6.addressesOverLimit).toBeGreaterThan(1000);
    expect(s.counters.tcp.pendingConnects).toBe(0);
    // Each SYN met a closed port on the host: refused, and nothing is left open.
    expect(s.counters.tcp.refused).toBeGreaterThan(1000);
    expect(s.counters.tcp.open).toBeLessThan(50);
    await stillServes("after-syn-flood6");
  });

  it("fragments that never complete are dropped within the reassembly bounds", async () => {
    await guest.shOk(`python3 ${q(HOSTILE6)} frag-flood eth0 ${gwMac} ${GUEST6} ${HOST6} 2000`, 120_000);
    // One sender: its own oldest datagrams give way to its newest, within its share of the bounds.
    const s = await untilSteady(status, (x) => x.counters.drops["reassembly6-owner-limit"] ?? 0);
    expect(s.counters.drops["reassembly6-owner-limit"]).toBeGreaterThan(1000);
    await stillServes("after-fragments6");
  });

  it("malformed packets of every kind are counted by reason and change nothing", async () => {
    const out = JSON.parse(
      await guest.shOk(`python3 ${q(HOSTILE6)} garbage eth0 ${gwMac} ${GUEST6} ${HOST6} 1500 11`, 120_000),
    );
    expect(out.sent).toBeGreaterThan(1500);
    await new Promise((r) => setTimeout(r, 500));
    const drops = (await status()).counters.drops;
    for (const reason of [
      "ipv6-truncated",
      "ipv6-extension-chain",
      "ipv6-extension-truncated",
      "tcp-checksum",
      "udp-no-checksum",
      "reassembly6-overlap",
      "ndp-claims-router-address",
      "ndp-router-advert-from-guest",
    ]) {
      expect(drops[reason], reason).toBeGreaterThan(0);
    }
    // The guest's neighbour entry for the gateway still says the gateway's MAC.
    expect(await guest.shOk("ip -6 neigh show fdc4:f303:9324::1 dev eth0")).toContain(gwMac);
    await stillServes("after-garbage6");
  });
});
