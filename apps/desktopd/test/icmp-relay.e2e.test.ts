/**
 * Ping beyond the gateway: a guest's echo leaves through the host's raw ICMP socket (desktopd runs
 * as root here) to a "far side" namespace behind a veth — an address only the host reaches — and
 * the reply comes back with the guest's own identifier (iputils ping checks it). The egress
 * policy refuses it like any flow; --no-icmp-relay turns it off.
 */
import { haveRootAndNetns, missingCommands, skipBecause } from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "./support/cli.js";
import { type FarSide, startFarSide } from "./support/far-side.js";
import { type Guest, startGuest } from "./support/guest.js";

const env = haveRootAndNetns();
const ready = env.ok && !skipBecause(missingCommands("ping", "python3", "openssl"));

describe.skipIf(!ready)("ICMP echo relayed beyond the gateway", () => {
  let far: FarSide;
  let guest: Guest;
  let off: Guest;

  beforeAll(async () => {
    far = await startFarSide(["far.test"], 4);
    guest = await startGuest("icmp", { configure: true, args: ["--egress", "deny 10.201.4.3"] });
    off = await startGuest("noicmp", { configure: true, args: ["--no-icmp-relay"] });
  });

  afterAll(async () => {
    await guest?.close();
    await off?.close();
    await far?.close();
  });

  it("relays a guest's ping to an address only the host reaches, and the replies come back", async () => {
    const r = await guest.sh(`ping -c 3 -i 0.2 -W 5 ${far.ip}`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    const status = JSON.parse((await cli("status", "--json", "--control", guest.daemon.info.control!)).out);
    expect(status.counters.icmp.relay).toMatchObject({ requests: 3, replies: 3 });
  });

  it("keeps two guests' pings apart by their identifiers", async () => {
    const [a, b] = await Promise.all([
      guest.sh(`ping -c 5 -i 0.2 -W 5 ${far.ip}`),
      guest.sh(`ping -c 5 -i 0.2 -W 5 ${far.ip}`),
    ]);
    expect(a.stdout).toMatch(/5 received/);
    expect(b.stdout).toMatch(/5 received/);
    expect(a.stdout).not.toMatch(/DUP/);
  });

  it("refuses what the egress policy refuses, and nothing with --no-icmp-relay", async () => {
    const denied = await guest.sh("ping -c 1 -W 2 10.201.4.3");
    expect(denied.code).not.toBe(0);
    const status = JSON.parse((await cli("status", "--json", "--control", guest.daemon.info.control!)).out);
    expect(status.counters.drops["icmp-echo-egress-denied"]).toBe(1);
    const r = await off.sh(`ping -c 1 -W 2 ${far.ip}`);
    expect(r.code).not.toBe(0);
    const offStatus = JSON.parse((await cli("status", "--json", "--control", off.daemon.info.control!)).out);
    expect(offStatus.counters.drops["icmp-echo-not-relayed"]).toBe(1);
  });
});
