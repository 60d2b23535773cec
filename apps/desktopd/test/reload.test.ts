/**
 * Live reload of a running daemon (in-process, VM sockets only, no root): what can change live
 * changes, the rest is reported as needing a restart, and a broken config leaves it untouched.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatEgressRule } from "@desktopd/stack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunOptionsInput } from "../src/config.js";
import { controlRequest } from "../src/control/client.js";
import { type DaemonHandle, runDaemon } from "../src/daemon.js";
import { InvalidOptionError } from "../src/errors.js";
import type { DnsService } from "../src/services/dns.js";
import { cli } from "./support/cli.js";

/** A free TCP port on loopback: bound, read, released. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe("reload", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-reload-"));
  const control = join(dir, "control.sock");
  let handle: DaemonHandle;
  let options: RunOptionsInput;
  let level: "info" | "debug" = "info";
  let applied = "";
  let portA: number;
  let portB: number;

  const answer = async (name: string) => {
    const dns = handle.services.find((s) => s.name === "dns") as DnsService;
    return (await dns.server!.resolver.resolve({ name, type: "A" })).answers.map(
      (a) => (a as { data: unknown }).data,
    );
  };

  beforeAll(async () => {
    portA = await freePort();
    portB = await freePort();
    options = {
      qemuSocket: [join(dir, "vm.sock")],
      control,
      publish: [`127.0.0.1:${portA}:80`],
      dnsRecord: ["web.test=10.0.0.1"],
      dnsUpstream: "127.0.0.1:9",
    };
    handle = await runDaemon({
      ...options,
      reloadOptions: () => ({ ...options, logLevel: level }),
      setLogLevel: (l) => {
        applied = l;
      },
    });
  });

  afterAll(async () => {
    await handle?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("reports nothing changed when the config is the same", async () => {
    expect(await handle.reload()).toEqual({ changed: [], applied: [], restartNeeded: [], problems: [] });
  });

  it("applies published ports, DNS records, egress and the log level live; the MTU needs a restart", async () => {
    expect(await answer("web.test")).toEqual(["10.0.0.1"]);
    options = {
      ...options,
      publish: [`127.0.0.1:${portB}:80`],
      dnsRecord: ["web.test=10.0.0.2"],
      egress: ["deny 10.0.0.0/8"],
      mtu: 1400,
    };
    level = "debug";
    const report = await handle.reload();
    expect(report.applied.sort()).toEqual(["dnsRecord", "egress", "logLevel", "publish"]);
    expect(report.restartNeeded).toEqual(["mtu"]);
    expect(report.problems).toEqual([]);
    expect(applied).toBe("debug");
    expect(handle.forwarder.list().map((f) => f.id)).toEqual([`tcp/127.0.0.1:${portB}`]);
    expect(await answer("web.test")).toEqual(["10.0.0.2"]);
    expect(handle.stack.egress.rules().map((r) => formatEgressRule(r))).toEqual(["deny 10.0.0.0/8"]);
    expect(handle.stack.config.mtu).toBe(1500);
    // The MTU stays "changed" until a restart: reported again, never half-applied.
    expect((await handle.reload()).restartNeeded).toEqual(["mtu"]);
  });

  it("keeps the running config when the new one is bad", async () => {
    const before = handle.forwarder.list().map((f) => f.id);
    const good = options;
    options = { ...options, publish: ["127.0.0.1:1:2:3:80"], dnsRecord: ["web.test=10.0.0.3"] };
    await expect(handle.reload()).rejects.toSatisfy((e) => InvalidOptionError.isInstance(e));
    expect(handle.forwarder.list().map((f) => f.id)).toEqual(before);
    expect(await answer("web.test")).toEqual(["10.0.0.2"]);
    options = good;
  });

  it("reports a port it cannot bind and applies the rest", async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const busy = (taken.address() as { port: number }).port;
    try {
      options = {
        ...options,
        publish: [`127.0.0.1:${portB}:80`, `127.0.0.1:${busy}:81`],
        dnsRecord: ["web.test=10.0.0.4"],
      };
      const report = await handle.reload();
      expect(report.problems).toHaveLength(1);
      expect(report.problems[0]).toContain(`127.0.0.1:${busy}:81`);
      expect(await answer("web.test")).toEqual(["10.0.0.4"]);
    } finally {
      taken.close();
    }
    // Once the port is free, the next reload binds it.
    const report = await handle.reload();
    expect(report.problems).toEqual([]);
    expect(handle.forwarder.list()).toHaveLength(2);
  });

  it("applies the proxy settings live; a PAC file that cannot be read is a problem and changes nothing", async () => {
    const proxy = () => (handle.status() as { proxy: Record<string, unknown> }).proxy;
    options = {
      ...options,
      upstreamProxy: "http://u:pw@127.0.0.1:3999",
      noProxy: "a.test",
      transparentProxyPorts: "8080",
    };
    const report = await handle.reload();
    expect(report.applied.sort()).toEqual(["noProxy", "transparentProxyPorts", "upstreamProxy"]);
    expect(proxy()).toMatchObject({
      source: "config",
      http: "http://u:***@127.0.0.1:3999",
      noProxy: ["a.test"],
      transparentPorts: [8080],
      transparentActive: true,
    });
    options = { ...options, proxyPac: join(dir, "missing.pac") };
    const bad = await handle.reload();
    expect(bad.applied).toEqual([]);
    expect(bad.problems).toHaveLength(1);
    expect(bad.problems[0]).toMatch(/^proxy: .*missing\.pac/);
    expect(proxy()).toMatchObject({ http: "http://u:***@127.0.0.1:3999" });
    options = { ...options, proxyPac: undefined, upstreamProxy: "direct" };
    await handle.reload();
    expect(proxy()).toMatchObject({ http: null, transparentActive: false });
  });

  it("is driven by POST /v1/reload and `desktopd reload`; a bad config is a 400 that names the key", async () => {
    options = { ...options, dnsRecord: ["web.test=10.0.0.5"] };
    const { code, out } = await cli("reload", "--control", control);
    expect(code).toBe(0);
    expect(out).toContain("applied: dnsRecord");
    expect(out).toContain("needs a restart to take effect: mtu");
    options = { ...options, udpTimeout: 0 };
    await expect(controlRequest(control, "POST", "/v1/reload")).rejects.toMatchObject({
      status: 400,
      message: "--udp-timeout: must be between 1 and 86400 seconds",
    });
    await expect(controlRequest(control, "GET", "/v1/reload")).rejects.toMatchObject({ status: 405 });
  });
});
