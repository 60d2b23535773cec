/**
 * DNS through the daemon: `desktopd run --configure` with --dns-upstream, --dns-record and
 * --dns-forward; the guest resolves with its configured resolv.conf (the gateway), using dig and
 * glibc. The upstream and the split-horizon server are dnsmasq on private loopback addresses.
 */

import { execFile } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { DnsCounters } from "@desktopd/dns";
import { type Dnsmasq, dig, parseDig, startDnsmasq } from "@desktopd/dns/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CLI_PATH,
  type Guest,
  haveRootAndNetns,
  missingCommands,
  skipBecause,
  startGuest,
  writeUdhcpcScript,
} from "./support/index.js";

const env = haveRootAndNetns();
const run = promisify(execFile);
const tools = !skipBecause(missingCommands("dnsmasq", "dig", "unshare"));

describe.skipIf(!env.ok || !tools)("desktopd DNS (--dns-upstream, --dns-record, --dns-forward)", () => {
  let upstream: Dnsmasq;
  let corp: Dnsmasq;
  let guest: Guest;
  /** dig in the guest without @server: it uses the resolv.conf --configure wrote. */
  const inGuest = async (args: string[]) => {
    const r = await guest.sh(`dig +tries=1 +timeout=5 ${args.join(" ")}`);
    return parseDig(r.stdout + r.stderr);
  };

  beforeAll(async () => {
    upstream = await startDnsmasq([
      "--local=/test/",
      "--address=/name.test/1.2.3.4",
      "--txt-record=txt.test,from upstream",
      "--srv-host=_ldap._tcp.name.test,ldap.test,389",
    ]);
    corp = await startDnsmasq(
      ["--local=/corp.example/", "--address=/wiki.corp.example/10.200.0.1"],
      undefined,
      5354,
    );
    guest = await startGuest("dnsd", {
      configure: true,
      args: [
        "--dns-upstream",
        upstream.host,
        "--dns-record",
        "db.test.internal=10.9.8.7",
        "--dns-record",
        "*.apps.internal=fd00::7",
        "--dns-record",
        "api.test.internal/CNAME=db.test.internal",
        "--dns-record",
        "_pg._tcp.test.internal/SRV=5432 db.test.internal",
        "--dns-record",
        "test.internal/MX=5 mail.test.internal",
        "--dns-record",
        "test.internal/TXT=owner=team-a",
        "--dns-forward",
        `corp.example=${corp.host}:${corp.port}`,
      ],
    });
  });

  afterAll(async () => {
    await guest?.close();
    await upstream?.stop();
    await corp?.stop();
  });

  it("hands the gateway out as the guest's nameserver and answers host.docker.internal there", async () => {
    expect(await guest.shOk("cat /etc/resolv.conf")).toContain(`nameserver ${guest.daemon.info.gateway}`);
    const r = await inGuest(["host.docker.internal"]);
    expect([r.status, r.answers], r.raw).toEqual([
      "NOERROR",
      [`host.docker.internal. A ${guest.daemon.info.host}`],
    ]);
    expect((await inGuest(["+tcp", "gateway.docker.internal"])).answers).toEqual([
      `gateway.docker.internal. A ${guest.daemon.info.gateway}`,
    ]);
    expect((await inGuest(["-x", guest.daemon.info.host!])).answers).toEqual([
      `254.65.168.192.in-addr.arpa. PTR host.docker.internal.`,
    ]);
  });

  it("serves --dns-record names, wildcards included", async () => {
    expect((await inGuest(["db.test.internal"])).answers).toEqual(["db.test.internal. A 10.9.8.7"]);
    expect((await inGuest(["web.apps.internal", "AAAA"])).answers).toEqual([
      "web.apps.internal. AAAA fd00::7",
    ]);
    expect(await guest.shOk("getent hosts db.test.internal")).toMatch(/^10\.9\.8\.7\s/);
  });

  it("serves --dns-record records of every type: CNAME (followed), SRV, MX, TXT", async () => {
    expect((await inGuest(["api.test.internal"])).answers).toEqual([
      "api.test.internal. CNAME db.test.internal.",
      "db.test.internal. A 10.9.8.7",
    ]);
    expect((await inGuest(["_pg._tcp.test.internal", "SRV"])).answers).toEqual([
      "_pg._tcp.test.internal. SRV 0 0 5432 db.test.internal.",
    ]);
    expect((await inGuest(["test.internal", "MX"])).answers).toEqual([
      "test.internal. MX 5 mail.test.internal.",
    ]);
    expect((await inGuest(["test.internal", "TXT"])).answers).toEqual(['test.internal. TXT "owner=team-a"']);
    // The name exists with other types: NODATA, not NXDOMAIN.
    const a = await inGuest(["test.internal", "A"]);
    expect([a.status, a.answers]).toEqual(["NOERROR", []]);
  });

  it("sends everything else to --dns-upstream, SRV and TXT included, and NXDOMAIN stays NXDOMAIN", async () => {
    expect((await inGuest(["name.test"])).answers).toEqual(["name.test. A 1.2.3.4"]);
    expect((await inGuest(["txt.test", "TXT"])).answers).toEqual(['txt.test. TXT "from upstream"']);
    expect((await inGuest(["_ldap._tcp.name.test", "SRV"])).answers).toEqual([
      "_ldap._tcp.name.test. SRV 0 0 389 ldap.test.",
    ]);
    expect((await inGuest(["missing.test"])).status).toBe("NXDOMAIN");
  });

  it("sends --dns-forward domains to their own server", async () => {
    expect((await inGuest(["wiki.corp.example"])).answers).toEqual(["wiki.corp.example. A 10.200.0.1"]);
    expect((await inGuest(["other.corp.example"])).status).toBe("NXDOMAIN");
    expect(guest.daemon.alive()).toBe(true);
  });
});

describe.skipIf(!env.ok || !tools)("desktopd DNS: names guests send in DHCP", () => {
  let upstream: Dnsmasq;
  let guest: Guest;
  let dir: string;
  const inGuest = (args: string[]) =>
    dig(guest.daemon.info.gateway!, 53, args, (argv) =>
      guest.ns.exec(argv[0]!, argv.slice(1)).then((r) => r.stdout + r.stderr),
    );

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dtd-dnsdhcp-"));
    upstream = await startDnsmasq(["--local=/test/"]);
    guest = await startGuest("dnsh", {
      args: ["--dns-upstream", upstream.host, "--control", join(dir, "control.sock")],
    });
  });

  afterAll(async () => {
    await guest?.close();
    await upstream?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("answers the hostname a guest sent in DHCP with its lease, and PTR for it", async () => {
    const script = join(dir, "udhcpc.sh");
    await writeUdhcpcScript(script, join(dir, "lease.txt"));
    await guest.shOk(`busybox udhcpc -f -q -n -i eth0 -x hostname:web1 -s ${script}`);
    const address = (await guest.shOk("ip -4 -o addr show dev eth0")).match(/inet ([\d.]+)\//)?.[1];
    expect(address).toBe("192.168.65.3");
    expect((await inGuest(["web1"])).answers).toEqual([`web1. A ${address}`]);
    expect((await inGuest(["-x", address!])).answers).toEqual(["3.65.168.192.in-addr.arpa. PTR web1."]);
    expect((await inGuest(["web2.test"])).status).toBe("NXDOMAIN");
    // The lease's name gets AAAA from the address the guest took by SLAAC, once it used it.
    let six: string | undefined;
    for (let i = 0; i < 50 && !six; i++) {
      // Usable once duplicate address detection is over: no longer "tentative".
      const m = /inet6 (fdc4:f303:9324:[0-9a-f:]+)\/64(.*)/.exec(
        await guest.shOk("ip -6 addr show dev eth0 scope global"),
      );
      six = m && !m[2]!.includes("tentative") ? m[1] : undefined;
      if (!six) await new Promise((r) => setTimeout(r, 200));
    }
    expect(six).toBeDefined();
    await guest.shOk(`ping -6 -c 1 -W 5 -I ${six} fdc4:f303:9324::1`);
    expect((await inGuest(["web1", "AAAA"])).answers).toEqual([`web1. AAAA ${six}`]);
    expect((await inGuest(["-x", six!])).answers).toEqual([expect.stringMatching(/ip6\.arpa\. PTR web1\.$/)]);
  });

  it("answers names registered through the control socket until they are removed, and logs the queries", async () => {
    const desktopd = async (...args: string[]) =>
      (await run(process.execPath, [CLI_PATH, ...args, "--control", join(dir, "control.sock")])).stdout;
    expect(await desktopd("dns", "names", "add", "db.test", "192.168.65.50")).toBe("db.test 192.168.65.50\n");
    await desktopd("dns", "names", "add", "db.test", "192.168.65.51", "--ttl", "600");
    expect((await inGuest(["db.test"])).answers.sort()).toEqual([
      "db.test. A 192.168.65.50",
      "db.test. A 192.168.65.51",
    ]);
    expect((await inGuest(["-x", "192.168.65.50"])).answers).toEqual([
      "50.65.168.192.in-addr.arpa. PTR db.test.",
    ]);
    const listed = JSON.parse(await desktopd("dns", "names", "ls", "--json")) as {
      name: string;
      ttl: number | null;
    }[];
    expect(listed.filter((n) => n.name === "db.test").map((n) => n.ttl !== null && n.ttl > 590)).toEqual([
      false,
      true,
    ]);

    const log = JSON.parse(await desktopd("dns", "log", "--json", "--limit", "2")) as {
      name: string;
      layer: string;
    }[];
    expect(log.map((e) => [e.name, e.layer])).toEqual([
      ["db.test", "registry"],
      ["50.65.168.192.in-addr.arpa", "registry"],
    ]);

    await desktopd("dns", "names", "rm", "db.test");
    // Not ours any more: the upstream's answer for its own zone.
    expect((await inGuest(["db.test"])).status).toBe("NXDOMAIN");
    const failed = await run(process.execPath, [
      CLI_PATH,
      "dns",
      "names",
      "add",
      "bad name",
      "1.2.3.4",
      "--control",
      join(dir, "control.sock"),
    ]).catch((e: { code: number; stderr: string }) => e);
    expect(failed).toMatchObject({ code: 1 });
    expect((failed as { stderr: string }).stderr).toContain("expected NAME=ADDRESS");
  });
});

/**
 * The daemon's default: the host's own resolution. The daemon runs in a mount namespace of its
 * own whose /etc/resolv.conf and /etc/hosts are this test's files (bind mounts), so glibc's
 * getaddrinfo in the daemon reads them and asks this test's dnsmasq, never the machine's resolver.
 */
describe.skipIf(!env.ok || !tools)("desktopd DNS: the host's resolution", () => {
  let dir: string;
  let upstream: Dnsmasq;
  let moved: Dnsmasq;
  let os: Guest;
  let nameservers: Guest;
  const digIn = async (guest: Guest, args: string[]) => {
    const r = await guest.sh(`dig +tries=1 +timeout=5 ${args.join(" ")}`);
    return parseDig(r.stdout + r.stderr);
  };
  const privateEtc = (): string[] => [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind "$0/resolv.conf" /etc/resolv.conf && mount --bind "$0/hosts" /etc/hosts && exec "$@"',
    dir,
  ];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dtd-dnshost-"));
    const answers = [
      "--local=/test/",
      "--address=/name.test/1.2.3.4",
      "--txt-record=txt-only.test,no address",
    ];
    upstream = await startDnsmasq(answers);
    moved = await startDnsmasq(["--local=/test/", "--address=/moved.test/5.6.7.8"]);
    await writeFile(join(dir, "resolv.conf"), `nameserver ${upstream.host}\n`);
    await writeFile(join(dir, "hosts"), "127.0.0.1 localhost\n10.7.7.7 hosts-only.test\n");
    os = await startGuest("dnsos", { configure: true, wrapper: privateEtc() });
    nameservers = await startGuest("dnsrc", {
      configure: true,
      wrapper: privateEtc(),
      args: ["--dns-host-mode", "nameservers"],
    });
  });

  afterAll(async () => {
    await os?.close();
    await nameservers?.close();
    await upstream?.stop();
    await moved?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("answers A from the OS resolver: /etc/hosts first, then the nameservers", async () => {
    expect((await digIn(os, ["hosts-only.test"])).answers).toEqual(["hosts-only.test. A 10.7.7.7"]);
    expect((await digIn(os, ["name.test"])).answers).toEqual(["name.test. A 1.2.3.4"]);
    expect((await digIn(os, ["missing.test"])).status).toBe("NXDOMAIN");
  });

  it("tells NODATA from NXDOMAIN for a name with no address records, which getaddrinfo cannot", async () => {
    for (const type of ["A", "AAAA"]) {
      const r = await digIn(os, ["txt-only.test", type]);
      expect([r.status, r.answers], r.raw).toEqual(["NOERROR", []]);
    }
    expect((await digIn(os, ["txt-only.test", "TXT"])).answers).toEqual(['txt-only.test. TXT "no address"']);
  });

  it("in nameservers mode asks resolv.conf's nameservers alone: /etc/hosts does not apply", async () => {
    expect((await digIn(nameservers, ["hosts-only.test"])).status).toBe("NXDOMAIN");
    expect((await digIn(nameservers, ["name.test"])).answers).toEqual(["name.test. A 1.2.3.4"]);
  });

  it("follows a rewritten resolv.conf without a restart, in both modes", async () => {
    // In place: the bind mount shows the same file.
    await writeFile(join(dir, "resolv.conf"), `nameserver ${moved.host}\n`);
    for (const guest of [os, nameservers]) {
      let answers: string[] = [];
      for (let i = 0; i < 40 && answers.length === 0; i++) {
        answers = (await digIn(guest, ["moved.test"])).answers;
        if (answers.length === 0) await new Promise((r) => setTimeout(r, 250));
      }
      expect(answers).toEqual(["moved.test. A 5.6.7.8"]);
    }
    expect(os.daemon.alive() && nameservers.daemon.alive()).toBe(true);
  });
});

/**
 * The upstream dies under the daemon: dnsmasq (--dns-upstream) is killed mid-test. Guests' new
 * names fail with SERVFAIL at once — the kernel refuses the query, the daemon says so rather than
 * waiting for its timeout — fixed names keep answering, nothing crashes, and a new upstream on
 * the same address is used as soon as it is there.
 */
describe.skipIf(!env.ok || !tools)("desktopd DNS: an upstream that dies", () => {
  let dir: string;
  let upstream: Dnsmasq;
  let again: Dnsmasq | undefined;
  let guest: Guest;
  const zone = ["--local=/test/", "--address=/name.test/1.2.3.4", "--address=/later.test/5.6.7.8"];
  const inGuest = (args: string[]) =>
    dig(guest.daemon.info.gateway!, 53, args, (argv) =>
      guest.ns.exec(argv[0]!, argv.slice(1)).then((r) => r.stdout + r.stderr),
    );
  const desktopd = async (...args: string[]) =>
    (await run(process.execPath, [CLI_PATH, ...args, "--control", join(dir, "control.sock")])).stdout;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dtd-dnsdie-"));
    upstream = await startDnsmasq(zone);
    guest = await startGuest("dnsdie", {
      configure: true,
      args: [
        "--dns-upstream",
        upstream.host,
        "--dns-record",
        "db.test.internal=10.9.8.7",
        "--control",
        join(dir, "control.sock"),
      ],
    });
  });

  afterAll(async () => {
    await guest?.close();
    await upstream?.stop();
    await again?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("answers SERVFAIL at once while it is gone, fixed names still, and resumes with a new one", async () => {
    expect((await inGuest(["name.test"])).answers).toEqual(["name.test. A 1.2.3.4"]);

    upstream.child.kill("SIGKILL");
    await once(upstream.child, "exit");

    // A burst of new names over UDP and TCP: each one answered, SERVFAIL, none left hanging.
    const gone = Array.from({ length: 20 }, (_, i) => `gone${i}.test`);
    const failed = await Promise.all(gone.map((n, i) => inGuest(i % 2 ? ["+tcp", n] : [n])));
    expect(failed.map((r) => r.status)).toEqual(gone.map(() => "SERVFAIL"));
    // Failed because the upstream's address refused the query, not at the end of a timeout.
    const log = JSON.parse(await desktopd("dns", "log", "--json", "--limit", "1000")) as {
      name: string;
      rcode: string;
      error?: string;
    }[];
    const errors = log.filter((e) => gone.includes(e.name)).map((e) => e.error ?? "");
    expect(errors).toHaveLength(20);
    for (const e of errors) expect(e).toMatch(/ECONNREFUSED/);

    for (const t of [[], ["+tcp"]]) {
      const fixed = await inGuest([...t, "db.test.internal"]);
      expect([fixed.status, fixed.answers], fixed.raw).toEqual(["NOERROR", ["db.test.internal. A 10.9.8.7"]]);
    }
    expect(guest.daemon.alive()).toBe(true);

    // The same address again, a new process: answers resume; the SERVFAILs were not kept.
    again = await startDnsmasq(zone, upstream.host, upstream.port);
    expect((await inGuest(["later.test"])).answers).toEqual(["later.test. A 5.6.7.8"]);
    expect((await inGuest(["+tcp", "gone0.test"])).status).toBe("NXDOMAIN");

    // What happened shows in `desktopd status`.
    const status = JSON.parse(await desktopd("status", "--json")) as { dns: DnsCounters };
    expect(status.dns.rcodes.SERVFAIL).toBe(20);
    expect(status.dns).toMatchObject({
      inflight: 0,
      limited: {},
      tcpConnections: { open: expect.any(Number) },
    });
    expect(status.dns.names?.entries).toBeGreaterThanOrEqual(3);
    expect(status.dns.cache).toBeDefined();
    expect(guest.daemon.alive()).toBe(true);
  });
});
