import { describe, expect, it } from "vitest";
import { configFromEnv, describeConfig, ProxyConfigError, ProxySettings, upstreamFor } from "../src/index.js";

describe("configFromEnv", () => {
  it("reads lower case before upper case, and picks HTTPS_PROXY for TLS, ALL_PROXY otherwise", () => {
    const config = configFromEnv({
      http_proxy: "http://lower:3128",
      HTTP_PROXY: "http://upper:3128",
      HTTPS_PROXY: "http://secure:3129",
      ALL_PROXY: "socks5h://socks:1080",
      NO_PROXY: "localhost,.corp.example",
    });
    expect(upstreamFor(config, "example.com", 80, false)).toMatchObject({ host: "lower" });
    expect(upstreamFor(config, "example.com", 443, true)).toMatchObject({ host: "secure", port: 3129 });
    expect(upstreamFor(config, "git.corp.example", 443, true)).toBeUndefined();
    expect(describeConfig(config)).toBe(
      "http=http://lower:3128 https=http://secure:3129 all=socks5h://socks:1080 no_proxy=localhost,corp.example",
    );
    const onlyAll = configFromEnv({ all_proxy: "socks5://s:1080" });
    expect(upstreamFor(onlyAll, "example.com", 80, false)).toMatchObject({ protocol: "socks5" });
    expect(describeConfig(configFromEnv({}))).toBe("direct");
  });

  it("names the variable that is wrong", () => {
    expect(() => configFromEnv({ HTTPS_PROXY: "ftp://x" })).toThrow(/^HTTPS_PROXY: unsupported scheme/);
    expect(() => configFromEnv({ no_proxy: "bad entry!" })).toThrowError(ProxyConfigError);
  });
});

describe("ProxySettings", () => {
  it("announces a change with the previous config, and nothing when it is the same", () => {
    const settings = new ProxySettings(configFromEnv({ HTTP_PROXY: "http://a:1" }));
    const seen: string[] = [];
    settings.on("changed", (now, before) => seen.push(`${describeConfig(before)} -> ${describeConfig(now)}`));
    settings.set(configFromEnv({ HTTP_PROXY: "http://a:1" }));
    settings.set(configFromEnv({ HTTP_PROXY: "http://b:2" }));
    expect(seen).toEqual(["http=http://a:1 -> http=http://b:2"]);
    expect(settings.upstreamFor("example.com", 80, false)).toMatchObject({ host: "b", port: 2 });
  });
});
