/**
 * Ping beyond the gateway, IPv4 and IPv6: a guest's echo leaves through an echo socket of the
 * host to a "far side" namespace behind a veth — an address only the host reaches — and the reply
 * comes back with the guest's own identifier and sequence (iputils ping checks both). As root
 * with the default ping_group_range ("1 0") that is a raw socket; where ping_group_range covers
 * desktopd's group (here: a daemon run in a namespace of its own that allows it), the
 * unprivileged ping socket. The egress policy refuses echo like any flow; --no-icmp-relay turns
 * it off.
 */
import { execFileSync } from "node:child_process";
import {
  createNetns,
  haveRootAndNetns,
  missingCommands,
  type Netns,
  skipBecause,
} from "@desktopd/stack/testing";
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
    expect(status.counters.icmp.relay).toMatchObject({ requests: 3, replies: 3, sockets: { ipv4: "raw" } });
  });

  it("relays ping over IPv6 too, to the far side's IPv6 address", async () => {
    const r = await guest.sh(`ping -6 -c 3 -i 0.2 -W 5 ${far.ip6}`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    const status = JSON.parse((await cli("status", "--json", "--control", guest.daemon.info.control!)).out);
    expect(status.counters.icmp.relay.sockets).toMatchObject({ ipv6: "raw" });
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

describe.skipIf(!ready)("ICMP echo through the unprivileged ping socket", () => {
  let hostSide: Netns;
  let farSide: Netns;
  let guest: Guest;

  beforeAll(async () => {
    // desktopd's own "host": a namespace whose ping_group_range admits group 0, joined to a far
    // side by a veth.
    hostSide = await createNetns("pinghost");
    farSide = await createNetns("pingfar");
    const inHost = (...args: string[]) => execFileSync("ip", ["netns", "exec", hostSide.name, ...args]);
    const inFar = (...args: string[]) => execFileSync("ip", ["netns", "exec", farSide.name, ...args]);
    inHost("ip", "link", "add", "eth9", "type", "veth", "peer", "name", "eth0", "netns", farSide.name);
    inHost("ip", "addr", "add", "10.201.7.1/24", "dev", "eth9");
    inHost("ip", "addr", "add", "fd42:201:7::1/64", "dev", "eth9", "nodad");
    inHost("ip", "link", "set", "eth9", "up");
    inHost("ip", "link", "set", "lo", "up");
    inHost("sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647");
    inFar("ip", "addr", "add", "10.201.7.2/24", "dev", "eth0");
    inFar("ip", "addr", "add", "fd42:201:7::2/64", "dev", "eth0", "nodad");
    inFar("ip", "link", "set", "eth0", "up");
    guest = await startGuest("pingdgram", {
      configure: true,
      wrapper: ["ip", "netns", "exec", hostSide.name],
    });
  });

  afterAll(async () => {
    await guest?.close();
    await farSide?.remove();
    await hostSide?.remove();
  });

  it("relays both families through ping sockets, no privilege needed", async () => {
    for (const [flag, address] of [
      ["-4", "10.201.7.2"],
      ["-6", "fd42:201:7::2"],
    ] as const) {
      const r = await guest.sh(`ping ${flag} -c 3 -i 0.2 -W 5 ${address}`);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/3 packets transmitted, 3 received/);
    }
    const status = JSON.parse((await cli("status", "--json", "--control", guest.daemon.info.control!)).out);
    expect(status.counters.icmp.relay).toMatchObject({
      requests: 6,
      replies: 6,
      sockets: { ipv4: "dgram", ipv6: "dgram" },
    });
  });
});
