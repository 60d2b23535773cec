/** `desktopd run -p/--publish`: validation before the system is touched, and the ready line. */
import { createSocketDialer } from "@desktopd/portfwd";
import { describe, expect, it } from "vitest";
import { parseRunOptions } from "../src/config.js";
import { InvalidOptionError } from "../src/errors.js";
import { firstLease, startPublishing } from "../src/publish.js";
import { formatReadyLine, parseReadyLine } from "../src/ready.js";
import { cli } from "./support/cli.js";

describe("--publish", () => {
  it("is listed in run's help", async () => {
    const r = await cli("run", "--help");
    expect(r.code).toBe(0);
    expect(r.out).toContain("-p, --publish <spec>");
    expect(r.out).toContain("--publish-target <ip>");
  });

  it("keeps the specs as given, in order", () => {
    const config = parseRunOptions({
      netns: "n",
      publish: ["8080:80", "[::1]::53/udp"],
      publishTarget: "192.168.65.9",
    });
    expect(config.publish).toEqual(["8080:80", "[::1]::53/udp"]);
    expect(config.publishTarget).toBe("192.168.65.9");
    expect(parseRunOptions({ netns: "n" }).publish).toBeUndefined();
  });

  it.each([
    [
      ["-p", "8080:80", "-p", "8080:80a"],
      '--publish: publish spec "8080:80a": container port "80a" is not a number',
    ],
    [
      ["--publish", "1.2.3.4:80"],
      '--publish: publish spec "1.2.3.4:80": "1.2.3.4" is an address, not a host port',
    ],
    [["-p", "80/sctp"], "sctp is not supported"],
    [["-p", "9000-9001:80"], "differ in length"],
    [["--publish-target", "guest"], "--publish-target: must be an IPv4 or IPv6 address of the guest"],
  ])("rejects %j with one line and exit code 1, before touching the system", async (args, message) => {
    const r = await cli("run", "--netns", "dtd-does-not-exist", ...args);
    expect(r.code).toBe(1);
    expect(r.err).toContain(message);
    expect(r.err.trimEnd().split("\n")).toHaveLength(1);
    // Validation comes first: no complaint about the namespace, root or /dev/net/tun.
    expect(r.err).not.toMatch(/namespace|root|tun/);
  });

  it("takes one spec as a string in a config file, and a default host address", () => {
    const config = parseRunOptions({ netns: "n", publish: "8080:80", publishHostIp: "::1" });
    expect(config.publish).toEqual(["8080:80"]);
    expect(config.publishHostIp).toBe("::1");
    expect(() => parseRunOptions({ netns: "n", publishHostIp: "localhost" })).toThrow(
      "--publish-host-ip: must be an IPv4 or IPv6 address",
    );
  });

  it("publishes specs without a host address on --publish-host-ip", async () => {
    const publishing = await startPublishing(
      { publish: ["0:80", "127.0.0.2::81"], publishHostIp: "0.0.0.0" },
      createSocketDialer(),
      () => "192.168.65.3",
    );
    try {
      expect(publishing.failed).toEqual([]);
      expect(publishing.published.map((f) => f.hostIp)).toEqual(["0.0.0.0", "127.0.0.2"]);
    } finally {
      await publishing.close();
    }
  });

  it("is an InvalidOptionError for runDaemon callers too", () => {
    let error: unknown;
    try {
      parseRunOptions({ netns: "n", publish: ["70000"] });
    } catch (e) {
      error = e;
    }
    expect(InvalidOptionError.isInstance(error)).toBe(true);
    expect((error as Error).message).toContain("container port 70000 is out of range 1-65535");
  });

  it("lists published ports on the ready line", () => {
    const line = formatReadyLine({
      netns: "n",
      ifname: "eth0",
      mac: "02:00:00:00:00:01",
      gateway: "192.168.65.1",
      host: "192.168.65.254",
      mtu: 1500,
      subnet: "192.168.65.0/24",
      qemu: [],
      vfkit: [],
      published: "tcp/127.0.0.1:8080>80,udp/[::1]:5353>53",
    });
    expect(parseReadyLine(line)?.published).toBe("tcp/127.0.0.1:8080>80,udp/[::1]:5353>53");
  });

  it("with VMs, leads to the first guest that leased, also after the others renew", () => {
    const lease = (mac: string, ip: string, expiresAt: number) => ({ mac, ip, expiresAt, static: false });
    // leases() lists bindings in the order they were made, as the stack's DHCP server does.
    let leases: ReturnType<typeof lease>[] = [];
    const target = firstLease({ leases: () => leases, config: { firstLease: "192.168.65.2" } });
    expect(target()).toBe("192.168.65.2");
    leases = [
      lease("02:00:00:00:00:0a", "192.168.65.3", 1000),
      lease("02:00:00:00:00:0b", "192.168.65.4", 1100),
    ];
    expect(target()).toBe("192.168.65.3");
    // The first guest renewed: its lease now expires last. It stays the target.
    leases = [
      lease("02:00:00:00:00:0a", "192.168.65.3", 1500),
      lease("02:00:00:00:00:0b", "192.168.65.4", 1100),
    ];
    expect(target()).toBe("192.168.65.3");
    // It left: the next guest takes over, and stays when the first comes back.
    leases = [lease("02:00:00:00:00:0b", "192.168.65.4", 1600)];
    expect(target()).toBe("192.168.65.4");
    leases = [
      lease("02:00:00:00:00:0a", "192.168.65.3", 1700),
      lease("02:00:00:00:00:0b", "192.168.65.4", 1600),
    ];
    expect(target()).toBe("192.168.65.4");
  });
});
