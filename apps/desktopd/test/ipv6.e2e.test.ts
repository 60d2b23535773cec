/**
 * The IPv6 side with the Linux kernel as the guest: SLAAC from desktopd's router advertisement
 * (address in fdc4:f303:9324::/64 and a default route through the gateway's link-local address),
 * neighbour discovery and echo for the gateway and host addresses, and TCP and UDP NATed over
 * IPv6: to the host's ::1 through the host address, and to a remote IPv6 network (a namespace
 * behind a veth, the far side of a VPN). A guest that claims the gateway's address is refused;
 * --no-ipv6 leaves IPv6 alone.
 */
import { execFileSync } from "node:child_process";
import {
  closedTcpPort,
  downloadScript,
  type HostHttpServer,
  haveRootAndNetns,
  missingCommands,
  seededSha256,
  skipBecause,
  startHttpServer,
  uploadScript,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli } from "./support/cli.js";
import { type FarSide, startFarSide } from "./support/far-side.js";
import { type Guest, q, startGuest } from "./support/guest.js";
import { startUdpEchoServer, type UdpEchoServer } from "./support/udp-echo.js";
import { freePort } from "./support/upstreams.js";

const env = haveRootAndNetns();
const ready = env.ok && !skipBecause(missingCommands("ping", "curl", "python3", "dig", "socat", "openssl"));
const HOST6 = "fdc4:f303:9324::254";
const MB100 = 100 * 1000 * 1000;
/** A prefix the host's routing table answers "unreachable" for: nothing is sent anywhere. */
const UNREACHABLE6 = "fd42:202:dead::/64";

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe.skipIf(!ready)("IPv6 on the guest link", () => {
  let guest: Guest;
  let auto: Guest;
  let off: Guest;
  let http: HostHttpServer;
  let udp: UdpEchoServer;
  let far: FarSide;
  let url: string;

  beforeAll(async () => {
    http = await startHttpServer({ host: "::1" });
    udp = await startUdpEchoServer("::1");
    url = `http://[${HOST6}]:${http.port}`;
    far = await startFarSide(["far6.test"], 6);
    execFileSync("ip", ["-6", "route", "replace", "unreachable", UNREACHABLE6]);
    guest = await startGuest("ipv6", { configure: true });
    // Not configured: the kernel's SLAAC alone, once the link is up.
    auto = await startGuest("slaac");
    await auto.shOk("ip link set lo up && ip link set eth0 up");
    off = await startGuest("noipv6", { configure: true, args: ["--no-ipv6"] });
  });

  afterAll(async () => {
    await guest?.close();
    await auto?.close();
    await off?.close();
    await Promise.allSettled([http?.close(), udp?.close(), far?.close()]);
    try {
      execFileSync("ip", ["-6", "route", "del", "unreachable", UNREACHABLE6], { stdio: "ignore" });
    } catch {}
  });

  /** The guest's global address once SLAAC gave it one. */
  const slaac = (g: Guest) =>
    until("a SLAAC address", async () => {
      // A router solicitation now, rather than waiting for the kernel's own schedule.
      const addr = await g.shOk("ip -6 addr show dev eth0 scope global");
      return /inet6 (fdc4:f303:9324:0:[0-9a-f:]+)\/64/.exec(addr)?.[1];
    });

  it("gives an unconfigured guest an address and a default route by router advertisement", async () => {
    expect(auto.daemon.info.ipv6).toBe("fdc4:f303:9324::/64");
    const address = await slaac(auto);
    expect(address).toMatch(/^fdc4:f303:9324:0:/);
    const route = await auto.shOk("ip -6 route show default");
    expect(route).toMatch(/default via fe80::5894:efff:fee4:cdd dev eth0 proto ra/);
    expect((await auto.shOk("cat /proc/sys/net/ipv6/conf/eth0/mtu")).trim()).toBe("1500");
    const r = await auto.sh("ping -6 -c 1 -W 5 fdc4:f303:9324::254");
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it("with --configure, sets a static IPv6 address and route at once", async () => {
    expect(await guest.shOk("ip -6 addr show dev eth0")).toContain("inet6 fdc4:f303:9324::3/64");
    expect(await guest.shOk("ip -6 route show default")).toMatch(
      /default via fe80::5894:efff:fee4:cdd dev eth0/,
    );
    const r = await guest.sh("ping -6 -c 1 -W 5 -I fdc4:f303:9324::3 fdc4:f303:9324::1");
    expect(r.code, r.stdout + r.stderr).toBe(0);
  });

  it("answers neighbour discovery and echo for the gateway and the host addresses", async () => {
    for (const target of ["fdc4:f303:9324::1", "fdc4:f303:9324::254"]) {
      const r = await guest.sh(`ping -6 -c 2 -W 5 ${target}`);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    const neigh = await guest.shOk("ip -6 neigh show fdc4:f303:9324::1 dev eth0");
    expect(neigh).toContain("5a:94:ef:e4:0c:dd");
    const counters = JSON.parse((await cli("status", "--json", "--control", guest.daemon.info.control!)).out)
      .counters.ipv6;
    expect(counters.echoAnswered).toBeGreaterThanOrEqual(4);
    expect(counters.routerAdvertisements).toBeGreaterThanOrEqual(1);
    // Both families in the status.
    const text = (await cli("status", "--control", guest.daemon.info.control!)).out;
    expect(text).toContain(
      "ipv6 fdc4:f303:9324::/64  gateway fdc4:f303:9324::1 (fe80::5894:efff:fee4:cdd)  host fdc4:f303:9324::254",
    );
  });

  it("answers DNS on the gateway's IPv6 address, which the router advertises (RDNSS)", async () => {
    const answer = await guest.shOk("dig +short +time=3 +tries=1 @fdc4:f303:9324::1 host.docker.internal A");
    expect(answer.trim()).toBe("192.168.65.254");
    // AAAA for the fixed names, over UDP and over TCP (the stack's TCP over IPv6 to the gateway).
    for (const transport of ["+notcp", "+tcp"]) {
      const six = await guest.shOk(
        `dig +short +time=3 +tries=1 ${transport} @fdc4:f303:9324::1 host.docker.internal AAAA`,
      );
      expect(six.trim()).toBe(HOST6);
      const gw = await guest.shOk(
        `dig +short +time=3 +tries=1 ${transport} @fdc4:f303:9324::1 gateway.docker.internal AAAA`,
      );
      expect(gw.trim()).toBe("fdc4:f303:9324::1");
    }
    // Nothing else listens there: UDP to another port is "port unreachable" at once.
    const other = await guest.sh("dig +time=3 +tries=1 -p 5353 @fdc4:f303:9324::1 host.docker.internal");
    expect(other.stdout + other.stderr).toMatch(/connection refused|unreachable/i);
  });

  it("reaches a server on the host's ::1 through the host address, and lists the flow", async () => {
    const r = await guest.sh(`curl -sS -g --max-time 20 ${q(`${url}/hello/six`)}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("hello six\n");
    expect(http.requests).toMatchObject({ hello: 1 });
  });

  it("downloads and uploads 100 MB over IPv6 intact", async () => {
    const down = await guest.shOk(downloadScript(url, MB100, 61).replace("curl ", "curl -g "), 180_000);
    expect(down.split(" ")[0]).toBe(seededSha256(MB100, 61));
    const up = await guest.shOk(uploadScript(url, MB100, 62).replace("curl ", "curl -g "), 180_000);
    expect(up.trim()).toBe(`${seededSha256(MB100, 62)} ${MB100}`);
  }, 400_000);

  it.each([8, 1400, 8000])("echoes a %i-byte UDP datagram from the host's ::1", async (size) => {
    const payload = `v6-${size}-`.padEnd(size, "y");
    const out = await guest.shOk(
      `printf %s ${q(payload)} | socat -b 65536 -T 5 - ${q(`UDP6:[${HOST6}]:${udp.port}`)}`,
      30_000,
    );
    expect(out).toBe(`echo:${payload}`);
    expect(udp.received.at(-1)).toMatchObject({ from: "::1", bytes: size });
  });

  it("reaches a remote IPv6 network the host routes to (the far side of a VPN)", async () => {
    const r = await guest.sh(`curl -sS -g --max-time 20 ${q(`http://[${far.ip6}]/hello`)}`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`far side: [${far.ip6}] /hello\n`);
    const flows = JSON.parse((await cli("flows", "--json", "--control", guest.daemon.info.control!)).out);
    expect(JSON.stringify(flows)).toContain("fdc4:f303:9324::");
  });

  it("answers a closed host port with a reset and an unreachable network with ICMPv6, at once", async () => {
    const port = await closedTcpPort("::1");
    const refused = await guest.sh(`curl -sS -v -g --max-time 60 ${q(`http://[${HOST6}]:${port}/`)}`, 90_000);
    expect(refused.code, refused.stderr).toBe(7);
    expect(refused.stderr).toMatch(/Connection refused/i);
    const started = Date.now();
    const r = await guest.sh(`curl -sS -g --max-time 30 'http://[fd42:202:dead::1]:80/'`, 60_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/No route to host|Network is unreachable|Couldn't connect/);
    expect(Date.now() - started).toBeLessThan(10_000);
    // IPv4 is untouched.
    expect((await guest.sh("ping -c 1 -W 5 192.168.65.1")).code).toBe(0);
  });

  it("does not let a guest claim the gateway's address", async () => {
    // The kernel's duplicate address detection asks first: desktopd says the address is taken.
    await guest.shOk("ip -6 addr add fdc4:f303:9324::1/64 dev eth0");
    const state = await until("DAD finished", async () => {
      const a = await guest.shOk("ip -6 addr show dev eth0");
      const line = a.split("\n").find((l) => l.includes("fdc4:f303:9324::1/64"));
      // Linux keeps a failed address as "tentative dadfailed"; a successful one loses "tentative".
      return line && (line.includes("dadfailed") || !line.includes("tentative")) ? line : undefined;
    });
    expect(state).toContain("dadfailed");
    await guest.sh("ip -6 addr del fdc4:f303:9324::1/64 dev eth0");
  });

  it("with --no-ipv6, sends no advertisement and counts the guest's IPv6 as drops", async () => {
    expect(off.daemon.info.ipv6).toBeUndefined();
    await off.sh("ping -6 -c 1 -W 2 ff02::2%eth0");
    await new Promise((r) => setTimeout(r, 1500));
    expect(await off.shOk("ip -6 addr show dev eth0 scope global")).toBe("");
    const status = JSON.parse((await cli("status", "--json", "--control", off.daemon.info.control!)).out);
    expect(status.counters.ipv6).toBeUndefined();
    expect(status.counters.drops.ipv6 ?? status.counters.drops.multicast).toBeGreaterThan(0);
  });
});

describe.skipIf(!ready)("publishing to a guest's IPv6 address", () => {
  let guest: Guest;
  let tcpPort: number;
  let udpPort: number;

  beforeAll(async () => {
    tcpPort = await freePort();
    udpPort = await freePort();
    guest = await startGuest("pub6", {
      configure: true,
      args: [
        ...["--publish-target", "fdc4:f303:9324::3"],
        ...["-p", `[::1]:${tcpPort}:8080`, "-p", `[::1]:${udpPort}:5353/udp`],
      ],
    });
    // Servers on the guest's IPv6 address only: an IPv4 path could not reach them.
    await guest.shOk(
      "(socat TCP6-LISTEN:8080,bind=[fdc4:f303:9324::3],ipv6only=1,fork,reuseaddr SYSTEM:'echo hello-six' >/dev/null 2>&1 &)" +
        " ; (socat UDP6-RECVFROM:5353,bind=[fdc4:f303:9324::3],ipv6only=1,fork SYSTEM:'sed s/^/udp-six-/' >/dev/null 2>&1 &)",
    );
  });

  afterAll(async () => {
    await guest?.close();
  });

  it("forwards [::1]:PORT on the host to the guest's IPv6 address, TCP and UDP", async () => {
    const tcp = await until("the TCP forward answers", async () => {
      const out = execFileSync("socat", ["-T", "5", "-", `TCP6:[::1]:${tcpPort}`], {
        input: "",
        encoding: "utf8",
      });
      return out.includes("hello-six") ? out : undefined;
    });
    expect(tcp.trim()).toBe("hello-six");
    const udp = execFileSync("socat", ["-T", "3", "-", `UDP6:[::1]:${udpPort}`], {
      input: "ping\n",
      encoding: "utf8",
    });
    expect(udp.trim()).toBe("udp-six-ping");
    const flows = (await cli("flows", "--control", guest.daemon.info.control!)).out;
    expect(flows).toContain("fdc4:f303:9324::3");
  });
});
