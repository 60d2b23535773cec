/**
 * The Linux kernel as a DHCP guest: busybox udhcpc gets its lease from the stack's DHCP server
 * (daemon without --configure), applies it with `ip`, and then reaches the gateway and the host.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HostHttpServer, haveRootAndNetns, startHttpServer } from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Guest, q, startGuest } from "./support/guest.js";
import { readUdhcpcRecord, writeUdhcpcScript } from "./support/udhcpc.js";

const env = haveRootAndNetns();
/** Not the default, so the test proves the MTU option is carried through DHCP. */
const MTU = 1400;

describe.skipIf(!env.ok)("DHCP guest (busybox udhcpc)", () => {
  let guest: Guest;
  let http: HostHttpServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dtd-dhcp-"));
    http = await startHttpServer();
    guest = await startGuest("dhcp", { args: ["--mtu", String(MTU)] });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("announces the link without configuring an address", async () => {
    expect(guest.daemon.info).toMatchObject({
      netns: guest.ns.name,
      ifname: "eth0",
      gateway: "192.168.65.1",
      host: "192.168.65.254",
      mtu: String(MTU),
    });
    const addr = await guest.shOk("ip -4 -o addr show dev eth0");
    expect(addr).not.toContain("inet ");
  });

  it("hands out 192.168.65.3/24, router, MTU and DNS options", async () => {
    const script = join(dir, "udhcpc.sh");
    const record = join(dir, "lease.txt");
    await writeUdhcpcScript(script, record);
    const r = await guest.ns.exec(
      "busybox",
      ["udhcpc", "-f", "-q", "-n", "-i", "eth0", "-O", "mtu", "-O", "search", "-s", script],
      { timeoutMs: 60_000 },
    );
    expect(r.code, `udhcpc failed:\n${r.stderr}\n${guest.daemon.describe()}`).toBe(0);

    const bound = (await readUdhcpcRecord(record)).find((e) => e.event === "bound");
    expect(bound, `no bound event:\n${r.stderr}`).toBeDefined();
    expect(bound).toMatchObject({
      interface: "eth0",
      ip: "192.168.65.3",
      mask: "24",
      subnet: "255.255.255.0",
      router: "192.168.65.1",
      serverid: "192.168.65.1",
      mtu: String(MTU),
      // The daemon's defaults: the gateway is the DNS server, no search domains.
      dns: "192.168.65.1",
      domain: "",
      search: "",
    });
    expect(Number(bound?.lease)).toBeGreaterThan(0);

    expect(await guest.shOk("ip -4 -o addr show dev eth0")).toContain("inet 192.168.65.3/24");
    expect(await guest.shOk("ip route show default")).toContain("default via 192.168.65.1 dev eth0");
    expect(await guest.shOk("cat /sys/class/net/eth0/mtu")).toBe(`${MTU}\n`);
  });

  it("answers a ping to the gateway", async () => {
    const out = await guest.shOk("ping -c 3 -i 0.2 -W 5 192.168.65.1");
    expect(out).toMatch(/3 packets transmitted, 3 received/);
  });

  it("reaches the host's 127.0.0.1 through the host address with the leased address", async () => {
    const body = await guest.shOk(
      `curl -sS --fail --max-time 30 ${q(`http://192.168.65.254:${http.port}/hello/dhcp`)}`,
    );
    expect(body).toBe("hello dhcp\n");
  });

  it("removes eth0 and exits 0 on SIGTERM", async () => {
    await guest.daemon.stop();
    const r = await guest.sh("ip link show eth0");
    expect(r.code).not.toBe(0);
  });
});
