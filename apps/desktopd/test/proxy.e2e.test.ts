/**
 * The proxy through the daemon, with a real guest (a netns on a TAP), real upstreams from Debian
 * (tinyproxy twice, microsocks) and a "VPN" side only the host reaches (a second namespace on a
 * veth, HTTP and HTTPS with a test certificate). The upstreams resolve the far names from a
 * hosts file of their own (a private mount namespace), so nothing asks the machine's resolver.
 *
 * Covered: the daemon following its environment; the explicit proxy at http.docker.internal:3128
 * (plain, CONNECT, direct to the host address); transparent 80/443 by Host and SNI, checked in
 * the upstream's log; a ClientHello without SNI going by address; NO_PROXY by name; an upstream
 * switched during a long download; proxy env for guests; egress refusals (403) and bad input
 * (400, 502) answered on their connection only; the SOCKS5 door into the guest, with a password.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  type HostHttpServer,
  haveRootAndNetns,
  missingCommands,
  skipBecause,
  startHttpServer,
  waitForListener,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { controlRequest } from "../src/control/client.js";
import { cli } from "./support/cli.js";
import { type FarSide, startFarSide } from "./support/far-side.js";
import { type Guest, q, startGuest } from "./support/guest.js";
import { parseExposition, sampleValue } from "./support/prometheus.js";
import { freePort, startMicrosocks, startTinyproxy, type Upstream } from "./support/upstreams.js";

const run = promisify(execFile);
const env = haveRootAndNetns();
const ready =
  env.ok &&
  !skipBecause(missingCommands("curl", "python3", "tinyproxy", "microsocks", "openssl", "unshare", "socat"));

const FAR_NAMES = ["web.far.test", "direct.far.test", "other.far.test"];

describe.skipIf(!ready)("the proxy through the daemon", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-proxy-"));
  const control = join(dir, "control.sock");
  const config = join(dir, "desktopd.yaml");
  const hosts = join(dir, "hosts");
  let far: FarSide;
  let guest: Guest;
  let hostWeb: HostHttpServer;
  let tinyA: Upstream;
  let tinyB: Upstream;
  let socks: Omit<Upstream, "log">;
  let socksDoor: number;

  const ctl = (...args: string[]) => cli(...args, "--control", control);
  const logOf = (t: { log: string }) => readFileSync(t.log, "utf8");

  beforeAll(async () => {
    far = await startFarSide(FAR_NAMES);
    writeFileSync(
      join(dir, "hosts"),
      `127.0.0.1 localhost\n${FAR_NAMES.map((n) => `${far.ip} ${n}`).join("\n")}\n`,
    );
    [tinyA, tinyB, socks] = await Promise.all([
      startTinyproxy(dir, "tiny-a", hosts),
      startTinyproxy(dir, "tiny-b", hosts),
      startMicrosocks(hosts),
    ]);
    hostWeb = await startHttpServer();
    socksDoor = await freePort();
    const deadDns = await freePort();
    // The SOCKS5 password from a config file (not the command line), which a test re-writes and reloads.
    writeFileSync(config, "socks5-auth: door:s3cret\n");
    guest = await startGuest("proxy", {
      configure: true,
      // The daemon follows its own environment until told otherwise.
      env: { http_proxy: `http://127.0.0.1:${tinyA.port}`, HTTPS_PROXY: `http://127.0.0.1:${tinyA.port}` },
      args: [
        ...["--control", control],
        ...FAR_NAMES.flatMap((n) => ["--dns-record", `${n}=${far.ip}`]),
        ...["--dns-record", "refused.far.test=10.201.0.2"],
        ...["--egress", "deny refused.far.test"],
        // Names the records do not hold go to a port where nothing answers, never to this machine's resolver.
        ...["--dns-upstream", `127.0.0.1:${deadDns}`],
        ...["--socks5", `127.0.0.1:${socksDoor}`, "--config", config],
      ],
    });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      for (const u of [tinyA, tinyB, socks]) u?.child.kill("SIGKILL");
      await hostWeb?.close();
      await far?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const curl = (args: string) => guest.shOk(`curl -sS --fail --max-time 15 ${args}`);

  it("follows the daemon's environment and shows it in status", async () => {
    const got = await ctl("proxy", "get", "--json");
    expect(got.code, got.err).toBe(0);
    const info = JSON.parse(got.out);
    expect(info.source).toBe("environment");
    expect(info.http).toBe(`http://127.0.0.1:${tinyA.port}`);
    expect(info.listen).toBe("192.168.65.1:3128");
    const status = await ctl("status");
    expect(status.out).toContain(`upstream http=http://127.0.0.1:${tinyA.port}`);
  });

  it("serves the explicit proxy at http.docker.internal:3128, plain and CONNECT, through the upstream", async () => {
    expect(await curl(`-x http://http.docker.internal:3128 http://web.far.test/explicit`)).toBe(
      "far side: web.far.test /explicit\n",
    );
    expect(logOf(tinyA)).toContain("web.far.test/explicit");
    expect(await curl(`-k -x http://http.desktopd.internal:3128 https://web.far.test/tls`)).toBe(
      "far side: web.far.test /tls\n",
    );
    expect(logOf(tinyA)).toMatch(/CONNECT web\.far\.test:443/);
  });

  it("sends the host address to the host's loopback directly, never upstream", async () => {
    const body = await curl(
      `-x http://http.docker.internal:3128 http://host.docker.internal:${hostWeb.port}/hello/p`,
    );
    expect(body).toContain("p");
    expect(logOf(tinyA)).not.toContain("host.docker.internal");
  });

  it("intercepts 80 and 443 transparently, by Host and by SNI", async () => {
    expect(await curl(`http://web.far.test/transparent`)).toBe("far side: web.far.test /transparent\n");
    expect(logOf(tinyA)).toContain("web.far.test/transparent");
    expect(await curl(`-k https://other.far.test/sni`)).toBe("far side: other.far.test /sni\n");
    expect(logOf(tinyA)).toMatch(/CONNECT other\.far\.test:443/);
    // curl sends no SNI to an address: the tunnel goes by address.
    expect(await curl(`-k https://${far.ip}/no-sni`)).toContain("/no-sni");
    expect(logOf(tinyA)).toContain(`CONNECT ${far.ip}:443`);
    const info = JSON.parse((await ctl("proxy", "get", "--json")).out);
    expect(info.counters.transparent.tlsByName).toBeGreaterThanOrEqual(1);
    expect(info.counters.transparent.byAddress).toBeGreaterThanOrEqual(1);
    expect(info.counters.transparent.http).toBeGreaterThanOrEqual(1);
  });

  it("goes direct for NO_PROXY names, by name, set through the CLI", async () => {
    const set = await ctl("proxy", "set", `http://127.0.0.1:${tinyA.port}`, "--no-proxy", "direct.far.test");
    expect(set.code, set.err).toBe(0);
    expect(set.out).toContain("[api]");
    const before = logOf(tinyA).length;
    expect(await curl(`-k https://direct.far.test/bypass`)).toBe("far side: direct.far.test /bypass\n");
    expect(await curl(`http://direct.far.test/bypass-http`)).toContain("/bypass-http");
    expect(logOf(tinyA).slice(before)).not.toContain("direct.far.test");
  });

  it("keeps a download on its upstream while the next request takes the new one", async () => {
    const download = curl(`-x http://http.docker.internal:3128 http://web.far.test/slow`);
    await new Promise((r) => setTimeout(r, 800));
    const events = await controlRequest(control, "PUT", "/v1/proxy", {
      upstream: `http://127.0.0.1:${tinyB.port}`,
    });
    expect((events as { http: string }).http).toBe(`http://127.0.0.1:${tinyB.port}`);
    const body = await download;
    expect(body.split("\n").filter(Boolean)).toHaveLength(30);
    expect(logOf(tinyA)).toContain("web.far.test/slow");
    expect(await curl(`http://web.far.test/after-switch`)).toContain("/after-switch");
    expect(logOf(tinyB)).toContain("web.far.test/after-switch");
    expect(logOf(tinyA)).not.toContain("after-switch");
  });

  it("tunnels through a SOCKS5 upstream that resolves the name (socks5h)", async () => {
    await ctl("proxy", "set", `socks5h://127.0.0.1:${socks.port}`);
    expect(await curl(`-k https://web.far.test/over-socks`)).toBe("far side: web.far.test /over-socks\n");
    expect(await curl(`-x http://http.docker.internal:3128 http://web.far.test/socks-plain`)).toContain(
      "/socks-plain",
    );
  });

  it("follows a PAC file: per-name upstreams, fallback to the next hop, DIRECT when the script fails", async () => {
    const dead = await freePort();
    const pac = join(dir, "proxy.pac");
    writeFileSync(
      pac,
      `function FindProxyForURL(url, host) {
        if (host == "other.far.test") return "PROXY 127.0.0.1:${dead}; PROXY 127.0.0.1:${tinyB.port}";
        if (shExpMatch(host, "*.far.test")) return "PROXY 127.0.0.1:${tinyA.port}";
        return "DIRECT";
      }`,
    );
    const set = await ctl("proxy", "set", "--pac", pac);
    expect(set.code, set.err).toBe(0);
    expect(set.out).toContain(`pac=${pac}`);
    expect(await curl(`http://web.far.test/pac-a`)).toContain("/pac-a");
    expect(logOf(tinyA)).toContain("web.far.test/pac-a");
    // The first hop refuses: the second one carries it.
    expect(await curl(`-k https://other.far.test/pac-b`)).toContain("/pac-b");
    expect(logOf(tinyB)).toMatch(/CONNECT other\.far\.test:443/);
    // A script that never returns is cut off: DIRECT, and the daemon serves on.
    writeFileSync(pac, "function FindProxyForURL(url, host) { while (true) {} }");
    expect((await ctl("proxy", "set", "--pac", pac)).code).toBe(0);
    const before = logOf(tinyA).length + logOf(tinyB).length;
    expect(await curl(`http://web.far.test/pac-loop`)).toContain("/pac-loop");
    expect(logOf(tinyA).length + logOf(tinyB).length).toBe(before);
    expect(guest.daemon.stderr()).toContain("PAC script failed");
    // A PAC file that cannot be read is refused, naming it; the settings stay.
    const bad = await ctl("proxy", "set", "--pac", join(dir, "missing.pac"));
    expect(bad.code).not.toBe(0);
    expect(bad.err).toContain("missing.pac");
  });

  it("hands guests the environment that points at the proxy", async () => {
    const out = (await ctl("proxy", "env")).out;
    expect(out).toContain("HTTP_PROXY=http://http.docker.internal:3128\n");
    expect(out).toContain("https_proxy=http://http.docker.internal:3128\n");
    expect(out).toMatch(/NO_PROXY=.*192\.168\.65\.0\/24/);
    writeFileSync(join(dir, "proxy.env"), out);
    const body = await guest.shOk(
      `set -a; . ${q(join(dir, "proxy.env"))}; curl -sS --fail --max-time 15 http://web.far.test/env`,
    );
    expect(body).toContain("/env");
  });

  it("answers bad requests and refused destinations on their connection only", async () => {
    await ctl("proxy", "set", "direct");
    const status = (args: string) =>
      guest.shOk(`curl -s -o /dev/null -w '%{http_code}' --max-time 15 ${args}`);
    // The egress policy applies to the proxy's direct connections: no way around it.
    expect(await status(`-x http://http.docker.internal:3128 http://refused.far.test/`)).toBe("403");
    // The guests' DNS asks only the test's dead upstream: no such name.
    expect(await status(`-x http://http.docker.internal:3128 http://nowhere.far.test/`)).toBe("502");
    // Nothing listens on 81 on the far side.
    expect(await status(`-x http://http.docker.internal:3128 http://web.far.test:81/`)).toBe("502");
    const garbage = await guest.shOk(
      `printf 'NOT A REQUEST\\r\\n\\r\\n' | socat -t 5 - TCP:192.168.65.1:3128 | head -1`,
    );
    expect(garbage).toMatch(/^HTTP\/1\.1 400/);
    const huge = await guest.shOk(
      `python3 -c "print('GET http://web.far.test/ HTTP/1.1\\r\\nX: ' + 'a' * 70000 + '\\r\\n\\r\\n', end='')" | socat -t 5 - TCP:192.168.65.1:3128 | head -1`,
    );
    expect(huge).toMatch(/^HTTP\/1\.1 431/);
    expect(await curl(`-x http://http.docker.internal:3128 http://web.far.test/still-serving`)).toContain(
      "still-serving",
    );
    const info = JSON.parse((await ctl("proxy", "get", "--json")).out);
    expect(info.counters.explicit.errors).toMatchObject({ 400: 1, 403: 1, 431: 1 });
    expect(guest.daemon.alive()).toBe(true);
  });

  it("opens a SOCKS5 door from host loopback into the guest, behind its password", async () => {
    guest.ns.spawn("python3", ["-m", "http.server", "8000", "--bind", "0.0.0.0", "--directory", dir]);
    await waitForListener(guest.ns, "t", 8000);
    const address = guest.daemon.info.address!.split("/")[0]!;
    const { stdout } = await run("curl", [
      ...["-sS", "--fail", "--max-time", "15"],
      ...["--socks5", `127.0.0.1:${socksDoor}`, "--proxy-user", "door:s3cret"],
      `http://${address}:8000/hosts`,
    ]);
    expect(stdout).toContain("web.far.test");
    const wrong = await run("curl", [
      ...["-sS", "--max-time", "15", "--socks5", `127.0.0.1:${socksDoor}`, "--proxy-user", "door:wrong"],
      `http://${address}:8000/hosts`,
    ]).catch((e: { code: number }) => e);
    expect((wrong as { code: number }).code).not.toBe(0);
    // Only guest addresses: the far side is not the door's to open.
    const outside = await run("curl", [
      ...["-sS", "--max-time", "15", "--socks5", `127.0.0.1:${socksDoor}`, "--proxy-user", "door:s3cret"],
      `http://${far.ip}/`,
    ]).catch((e: { code: number; stderr: string }) => e);
    expect((outside as { code: number }).code).not.toBe(0);
    const info = JSON.parse((await ctl("proxy", "get", "--json")).out);
    expect(info.counters.socks5.connected).toBeGreaterThanOrEqual(1);
    expect(info.counters.socks5.refused).toMatchObject({ auth: 1, "not-allowed": 1 });
  });

  it("shows what the proxies did in the metrics", async () => {
    const metricsText = (await ctl("metrics")).out;
    const metrics = parseExposition(metricsText);
    expect(
      sampleValue(metrics, "desktopd_proxy_transparent_total", { route: "tls-sni" }),
    ).toBeGreaterThanOrEqual(2);
    expect(
      sampleValue(metrics, "desktopd_proxy_transparent_total", { route: "http-host" }),
    ).toBeGreaterThanOrEqual(2);
    expect(sampleValue(metrics, "desktopd_proxy_errors_total", { status: "403" })).toBe(1);
    expect(sampleValue(metrics, "desktopd_proxy_errors_total", { status: "431" })).toBe(1);
    expect(sampleValue(metrics, "desktopd_proxy_requests_total", { kind: "connect" })).toBeGreaterThanOrEqual(
      1,
    );
    expect(
      sampleValue(metrics, "desktopd_socks5_connections_total", { outcome: "connected" }),
    ).toBeGreaterThanOrEqual(1);
    expect(sampleValue(metrics, "desktopd_socks5_connections_total", { outcome: "auth" })).toBe(1);
    // tinyproxy closes every connection: nothing was kept (a counter shows no sample at 0).
    expect(metricsText).toContain("# TYPE desktopd_proxy_upstream_kept_total counter");
    expect(sampleValue(metrics, "desktopd_proxy_upstream_kept_total", { outcome: "reused" }) ?? 0).toBe(0);
  });

  it("refuses a bad upstream URL from the CLI, naming the key, and keeps the settings", async () => {
    const before = JSON.parse((await ctl("proxy", "get", "--json")).out);
    const bad = await ctl("proxy", "set", "gopher://proxy.test:70");
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/upstream: unsupported scheme "gopher"/);
    expect(JSON.parse((await ctl("proxy", "get", "--json")).out).summary).toBe(before.summary);
  });

  it("applies an allow-list and CONNECT ports from a reloaded config, answering 403 with a reason", async () => {
    writeFileSync(
      config,
      "socks5-auth: door:s3cret\nproxy-allow: [web.far.test]\nproxy-connect-ports: [443]\nupstream-proxy: direct\n",
    );
    const reload = await ctl("reload", "--json");
    expect(reload.code, reload.err).toBe(0);
    expect(JSON.parse(reload.out).applied.sort()).toEqual([
      "proxyAllow",
      "proxyConnectPorts",
      "upstreamProxy",
    ]);
    const get = (args: string) =>
      guest.sh(`curl -sS --max-time 15 -w ' %{http_code}' -x http://http.docker.internal:3128 ${args}`);
    expect((await get("http://other.far.test/")).stdout).toMatch(
      /other\.far\.test:80 is not on this proxy's allow-list\n 403$/,
    );
    expect((await get("http://web.far.test/allowed")).stdout).toMatch(/\/allowed\n 200$/);
    // curl -p tunnels plain HTTP through CONNECT: to port 80, which is not allowed.
    const tunnel = await guest.sh(
      "curl -sS --max-time 15 -p -x http://http.docker.internal:3128 http://web.far.test/",
    );
    expect(tunnel.code).not.toBe(0);
    expect(tunnel.stderr).toContain("403");
    expect(await curl(`-k -x http://http.docker.internal:3128 https://web.far.test/tunnel-ok`)).toContain(
      "/tunnel-ok",
    );
    const info = JSON.parse((await ctl("proxy", "get", "--json")).out);
    expect(info).toMatchObject({ allow: ["web.far.test"], connectPorts: [443], source: "config" });
  });
});
