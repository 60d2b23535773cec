/**
 * /v1/proxy and /v1/autoforward over a real control socket, with the daemon's own services (not
 * bound to a stack: the API's validation and answers are what is tested here; the e2e tests drive
 * them with guests). Bad input is a 400 naming the problem, unknown ids 404, and nothing changes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createForwarder, createSocketDialer, type Forwarder } from "@desktopd/portfwd";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseRunOptions } from "../src/config.js";
import { controlRequest } from "../src/control/client.js";
import { EventBus } from "../src/control/events.js";
import { type ControlServer, startControlServer } from "../src/control/server.js";
import { createAutoforwardService } from "../src/services/autoforward.js";
import { createProxyService } from "../src/services/proxy.js";

describe("control API: proxy and automatic forwards", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-control-svc-"));
  const path = join(dir, "control.sock");
  let control: ControlServer;
  let forwarder: Forwarder;
  const events = new EventBus();
  const seen: string[] = [];

  beforeAll(async () => {
    const config = parseRunOptions({ qemuSocket: [join(dir, "vm.sock")] });
    forwarder = createForwarder({ dialer: createSocketDialer(), target: "127.0.0.1" });
    events.subscribe((e) => seen.push(e.type));
    control = await startControlServer(path, {
      forwarder,
      events,
      status: () => ({}),
      proxy: createProxyService(config, events, undefined, {}),
      autoforward: createAutoforwardService(config, events),
    });
  });

  afterAll(async () => {
    await control?.close();
    await forwarder?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const fails = (method: string, url: string, body?: unknown) =>
    controlRequest(path, method, url, body).then(
      () => "no error",
      (e: Error) => e.message,
    );

  it("sets, reports and unsets the upstream, announcing each change", async () => {
    const set = (await controlRequest(path, "PUT", "/v1/proxy", {
      upstream: "socks5h://u:secret@127.0.0.1:1080",
      noProxy: ["a.test", "10.0.0.0/8"],
    })) as Record<string, unknown>;
    expect(set).toMatchObject({
      source: "api",
      http: "socks5h://u:***@127.0.0.1:1080",
      noProxy: ["a.test", "10.0.0.0/8"],
    });
    expect(JSON.stringify(set)).not.toContain("secret");
    const unset = (await controlRequest(path, "DELETE", "/v1/proxy")) as Record<string, unknown>;
    expect(unset).toMatchObject({ source: "environment", summary: "direct" });
    expect(seen.filter((t) => t === "proxy-changed")).toHaveLength(2);
    const env = (await controlRequest(path, "GET", "/v1/proxy/env")) as Record<string, string>;
    expect(env.https_proxy).toBe("http://http.docker.internal:3128");
  });

  it("refuses bad proxy settings with 400 naming the key, and keeps the old ones", async () => {
    expect(await fails("PUT", "/v1/proxy", { upstream: "gopher://x" })).toMatch(
      /^upstream: unsupported scheme/,
    );
    expect(await fails("PUT", "/v1/proxy", { upstream: "http://x:1", noProxy: "10.0.0.0/40" })).toMatch(
      /^noProxy: /,
    );
    expect(await fails("PUT", "/v1/proxy", { noProxy: "a" })).toMatch(/expected \{"upstream"/);
    expect(await fails("PUT", "/v1/proxy", { upstream: 7 })).toMatch(/expected \{"upstream"/);
    expect(await fails("PUT", "/v1/proxy", { pac: join(dir, "none.pac") })).toMatch(/proxyPac: .*none\.pac/);
    expect(await fails("POST", "/v1/proxy")).toMatch(/POST not allowed/);
    expect(await fails("GET", "/v1/proxy/nope")).toMatch(/no such resource/);
    expect(((await controlRequest(path, "GET", "/v1/proxy")) as { summary: string }).summary).toBe("direct");
  });

  it("adds, lists and removes automatic-forward rules, in order", async () => {
    const a = (await controlRequest(path, "POST", "/v1/autoforward", { rule: "ignore 22" })) as {
      id: number;
    };
    const b = (await controlRequest(path, "POST", "/v1/autoforward", {
      rule: { action: "forward", protocol: "tcp", ports: "3000-3999", hostPort: "+10000" },
      position: 0,
    })) as { id: number; rule: string };
    expect(b.rule).toBe("forward tcp 3000-3999 to +10000");
    const info = (await controlRequest(path, "GET", "/v1/autoforward")) as {
      rules: { id: number; rule: string }[];
    };
    expect(info.rules.map((r) => r.rule)).toEqual(["forward tcp 3000-3999 to +10000", "ignore 22"]);
    expect(await controlRequest(path, "DELETE", `/v1/autoforward/${a.id}`)).toMatchObject({
      rule: "ignore 22",
    });
    expect(await fails("DELETE", `/v1/autoforward/${a.id}`)).toMatch(/no autoforward rule with id/);
    await controlRequest(path, "DELETE", `/v1/autoforward/${b.id}`);
  });

  it("refuses bad rules with 400 naming the problem", async () => {
    expect(await fails("POST", "/v1/autoforward", { rule: "drop 22" })).toMatch(
      /starts with "forward" or "ignore"/,
    );
    expect(await fails("POST", "/v1/autoforward", { rule: "forward 80 to 1.2.3:80" })).toMatch(
      /"1\.2\.3" is not an address/,
    );
    expect(await fails("POST", "/v1/autoforward", { rule: ["ignore 22"] })).toMatch(/expected \{"rule"/);
    expect(await fails("POST", "/v1/autoforward", { rule: "ignore 22", position: -1 })).toMatch(/position/);
    expect(await fails("DELETE", "/v1/autoforward/abc")).toMatch(/no autoforward rule with id abc/);
    expect(((await controlRequest(path, "GET", "/v1/autoforward")) as { rules: unknown[] }).rules).toEqual(
      [],
    );
  });
});
