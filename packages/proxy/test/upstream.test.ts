import { describe, expect, it } from "vitest";
import { formatUpstream, ProxyConfigError, parseUpstream } from "../src/index.js";

describe("parseUpstream", () => {
  it("reads every scheme with its default port, credentials decoded", () => {
    expect(parseUpstream("http://proxy.corp:3128")).toEqual({
      protocol: "http",
      host: "proxy.corp",
      port: 3128,
    });
    expect(parseUpstream("https://proxy.corp")).toEqual({ protocol: "https", host: "proxy.corp", port: 443 });
    expect(parseUpstream("socks5://10.0.0.1")).toEqual({ protocol: "socks5", host: "10.0.0.1", port: 1080 });
    expect(parseUpstream("SOCKS5H://[fd00::1]:1081")).toEqual({
      protocol: "socks5h",
      host: "fd00::1",
      port: 1081,
    });
    expect(parseUpstream("http://us%40er:p%3Ass@proxy:8080")).toEqual({
      protocol: "http",
      host: "proxy",
      port: 8080,
      auth: { username: "us@er", password: "p:ss" },
    });
  });

  it("takes a bare host:port as http, as curl does, and allows a trailing slash", () => {
    expect(parseUpstream("proxy:3128")).toEqual({ protocol: "http", host: "proxy", port: 3128 });
    expect(parseUpstream("http://proxy:3128/")).toMatchObject({ port: 3128 });
  });

  it("refuses what is not a proxy URL, naming the key and never the password", () => {
    const problems: [string, RegExp][] = [
      ["", /HTTPS_PROXY: is empty/],
      ["ftp://proxy:21", /unsupported scheme "ftp"/],
      ["http://proxy:3128/path", /has a path/],
      ["http://user:secret@proxy:99999", /is not a proxy URL/],
      ["http://user:secret@proxy:0", /port must be 1..65535/],
      ["http://", /is not a proxy URL|names no host/],
    ];
    for (const [text, message] of problems) {
      let error: unknown;
      try {
        parseUpstream(text, "HTTPS_PROXY");
      } catch (e) {
        error = e;
      }
      expect(ProxyConfigError.isInstance(error), text).toBe(true);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain("secret");
      expect((error as ProxyConfigError).key).toBe("HTTPS_PROXY");
    }
  });

  it("formats without the password", () => {
    expect(formatUpstream(parseUpstream("http://bob:secret@proxy:3128"))).toBe("http://bob:***@proxy:3128");
    expect(formatUpstream(parseUpstream("socks5h://[::1]:1080"))).toBe("socks5h://[::1]:1080");
  });
});
