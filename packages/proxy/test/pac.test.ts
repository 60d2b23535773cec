import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { compilePac, loadPac, ProxySettings, parseNoProxy, parsePacAnswer } from "../src/index.js";

const SCRIPT = `function FindProxyForURL(url, host) {
  if (isPlainHostName(host) || dnsDomainIs(host, ".corp.test")) return "DIRECT";
  if (shExpMatch(url, "https://*")) return "HTTPS secure.proxy:443; PROXY [fd00::1]:3128";
  if (shExpMatch(host, "*.socks.test")) return "SOCKS5 127.0.0.1:1080";
  return "PROXY 10.0.0.1:3128; DIRECT";
}`;

describe("parsePacAnswer", () => {
  it("reads each hop in order, DIRECT as undefined", () => {
    expect(parsePacAnswer("PROXY a:3128; DIRECT")).toEqual([
      { protocol: "http", host: "a", port: 3128 },
      undefined,
    ]);
    expect(parsePacAnswer(" HTTPS p:443 ;SOCKS5 s:1080; SOCKS [::1]:9")).toEqual([
      { protocol: "https", host: "p", port: 443 },
      { protocol: "socks5h", host: "s", port: 1080 },
      { protocol: "socks5h", host: "::1", port: 9 },
    ]);
  });

  it("skips what it cannot use; nothing usable is DIRECT", () => {
    expect(parsePacAnswer("SOCKS4 a:1080; PROXY b:99999; PROXY c; PROXY d:1 e; PROXY f:8080")).toEqual([
      { protocol: "http", host: "f", port: 8080 },
    ]);
    expect(parsePacAnswer("")).toEqual([undefined]);
    expect(parsePacAnswer("nonsense")).toEqual([undefined]);
  });
});

describe("compilePac", () => {
  it("runs FindProxyForURL with the PAC helpers", async () => {
    const pac = await compilePac(SCRIPT, "test.pac");
    try {
      expect(await pac.find("http://intranet/", "intranet")).toEqual([undefined]);
      expect(await pac.find("http://git.corp.test/", "git.corp.test")).toEqual([undefined]);
      expect(await pac.find("https://example.com/", "example.com")).toEqual([
        { protocol: "https", host: "secure.proxy", port: 443 },
        { protocol: "http", host: "fd00::1", port: 3128 },
      ]);
      expect(await pac.find("http://a.socks.test/", "a.socks.test")).toEqual([
        { protocol: "socks5h", host: "127.0.0.1", port: 1080 },
      ]);
    } finally {
      pac.close();
    }
  });

  it("cuts off a script that loops or eats memory, answering DIRECT and reporting it", async () => {
    const errors: string[] = [];
    const pac = await compilePac(
      `function FindProxyForURL(url, host) {
        if (host === "loop") while (true) {}
        if (host === "hog") { const a = []; while (true) a.push("x".repeat(1024)); }
        if (host === "throw") throw new Error("nope");
        if (host === "number") return 42;
        return "PROXY p:1";
      }`,
      "bad.pac",
      { timeoutMs: 200, memoryLimit: 8 * 1024 * 1024, onError: (e) => errors.push(e.message) },
    );
    try {
      for (const host of ["loop", "hog", "throw", "number"]) {
        expect(await pac.find(`http://${host}/`, host)).toEqual([undefined]);
      }
      expect(errors).toHaveLength(4);
      expect(errors[0]).toMatch(/interrupted/);
      // The interpreter is still usable after each failure.
      expect(await pac.find("http://ok/", "ok")).toEqual([{ protocol: "http", host: "p", port: 1 }]);
    } finally {
      pac.close();
    }
  });

  it("refuses a file without FindProxyForURL, naming it", async () => {
    await expect(compilePac("var x = 1;", "empty.pac")).rejects.toThrow(/proxyPac: empty\.pac/);
    await expect(compilePac("function (", "syntax.pac")).rejects.toThrow(/syntax\.pac/);
  });
});

describe("loadPac", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-pac-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads a path, a file: URL and an http URL", async () => {
    const path = join(dir, "proxy.pac");
    writeFileSync(path, SCRIPT);
    const server = http.createServer((req, res) => {
      if (req.url === "/proxy.pac") res.end(SCRIPT);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const location of [path, `file://${path}`, `${url}/proxy.pac`]) {
        const pac = await loadPac(location);
        expect(pac.source).toBe(location);
        expect(await pac.find("http://a.socks.test/", "a.socks.test")).toHaveLength(1);
        pac.close();
      }
      await expect(loadPac(`${url}/missing.pac`)).rejects.toThrow(/missing\.pac: HTTP 404/);
      await expect(loadPac(join(dir, "none.pac"))).rejects.toThrow(/proxyPac: .*none\.pac/);
    } finally {
      server.close();
    }
  });
});

describe("ProxySettings.routes", () => {
  it("asks the PAC script for what NO_PROXY and the embedder's own names leave", async () => {
    const pac = await compilePac(SCRIPT, "test.pac");
    const settings = new ProxySettings(
      { noProxy: parseNoProxy("skip.test"), pac },
      { alwaysDirect: parseNoProxy("docker.internal") },
    );
    try {
      expect(settings.hasUpstream).toBe(true);
      expect(await settings.routes("host.docker.internal", 80, false)).toEqual([undefined]);
      expect(await settings.routes("skip.test", 80, false)).toEqual([undefined]);
      expect(await settings.routes("example.com", 443, true)).toHaveLength(2);
      expect(await settings.routes("example.com", 80, false)).toEqual([
        { protocol: "http", host: "10.0.0.1", port: 3128 },
        undefined,
      ]);
    } finally {
      pac.close();
    }
  });
});
