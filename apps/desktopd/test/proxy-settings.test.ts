import { parseScutilProxy } from "@desktopd/proxy";
import { describe, expect, it } from "vitest";
import { describeProxy, guestProxyEnv, resolveProxyConfig } from "../src/proxy-settings.js";

const ENV = { https_proxy: "http://env-proxy:3128", HTTP_PROXY: "http://ENV:1", no_proxy: ".corp.test" };

describe("resolveProxyConfig", () => {
  it("follows the environment, lower case first, when nothing else is set", () => {
    const { config, source } = resolveProxyConfig({}, undefined, ENV);
    expect(source).toBe("environment");
    expect(describeProxy(config, source)).toMatchObject({
      // URL hosts compare lower case.
      http: "http://env:1",
      https: "http://env-proxy:3128",
      noProxy: ["corp.test"],
    });
  });

  it("prefers the config to the environment, and the API to both", () => {
    const keys = { upstreamProxy: "socks5h://u:pw@socks:1080", noProxy: ["10.0.0.0/8"] };
    const fromConfig = resolveProxyConfig(keys, undefined, ENV);
    expect(fromConfig.source).toBe("config");
    expect(describeProxy(fromConfig.config, "config")).toMatchObject({
      http: "socks5h://u:***@socks:1080",
      https: "socks5h://u:***@socks:1080",
      noProxy: ["10.0.0.0/8"],
    });
    const fromApi = resolveProxyConfig(keys, { upstream: "direct" }, ENV);
    expect(fromApi.source).toBe("api");
    expect(describeProxy(fromApi.config, "api").summary).toBe("no_proxy=10.0.0.0/8");
    expect(resolveProxyConfig({ upstreamProxy: "direct" }, undefined, ENV).config.https).toBeUndefined();
  });

  it("names the key of a bad URL from the config or the API; a bad environment is only a warning", () => {
    expect(() => resolveProxyConfig({ upstreamProxy: "gopher://x" }, undefined, {})).toThrow(/upstreamProxy/);
    expect(() => resolveProxyConfig({}, { upstream: "http://x:0" }, {})).toThrow(/upstream/);
    const warnings: unknown[] = [];
    const logger = { warn: (o: unknown) => warnings.push(o) } as never;
    const { config } = resolveProxyConfig({}, undefined, { HTTP_PROXY: "gopher://x" }, logger);
    expect(config.http).toBeUndefined();
    expect(warnings).toHaveLength(1);
  });
});

describe("the system's settings (macOS, Windows)", () => {
  const system = parseScutilProxy(
    "HTTPEnable : 1\nHTTPProxy : sys.proxy\nHTTPPort : 8080\nProxyAutoConfigEnable : 1\nProxyAutoConfigURLString : http://wpad/wpad.dat\n",
  );

  it("are used when the environment names no proxy, with their PAC file", () => {
    const r = resolveProxyConfig({}, undefined, {}, undefined, system);
    expect(r.source).toBe("system");
    expect(r.pac).toBe("http://wpad/wpad.dat");
    expect(describeProxy(r.config, r.source).http).toBe("http://sys.proxy:8080");
  });

  it("give way to the environment, the config and the API", () => {
    expect(resolveProxyConfig({}, undefined, ENV, undefined, system).source).toBe("environment");
    expect(resolveProxyConfig({ upstreamProxy: "direct" }, undefined, {}, undefined, system).source).toBe(
      "config",
    );
  });
});

describe("guestProxyEnv", () => {
  it("points both cases at the gateway's proxy and keeps local names and the subnet off it", () => {
    const { config } = resolveProxyConfig({ noProxy: ["git.corp.test:22"] }, undefined, {});
    const env = guestProxyEnv(config, "192.168.65.0/24", "fdc4:f303:9324::/64");
    expect(env.HTTP_PROXY).toBe("http://http.docker.internal:3128");
    expect(env.https_proxy).toBe(env.HTTP_PROXY);
    expect(env.no_proxy).toBe(env.NO_PROXY);
    expect(env.NO_PROXY!.split(",")).toEqual([
      "localhost",
      "127.0.0.1",
      "::1",
      ".docker.internal",
      ".desktopd.internal",
      "192.168.65.0/24",
      "fdc4:f303:9324::/64",
      "git.corp.test:22",
    ]);
  });
});
