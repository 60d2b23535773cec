/** The status page's server: the token, the cookie it becomes, loopback only, read-only, fixed files. */
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InvalidOptionError } from "../src/errors.js";
import { startUiServer, type UiServer } from "../src/ui-server.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(
  url: string,
  o: { method?: string; headers?: Record<string, string>; path?: string } = {},
): Promise<Answer> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: u.hostname,
        port: u.port,
        path: o.path ?? u.pathname + u.search,
        method: o.method ?? "GET",
        headers: o.headers,
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("status page server", () => {
  let ui: UiServer;
  let base: string;
  const apiCalls: string[] = [];

  beforeAll(async () => {
    ui = await startUiServer({
      listen: "127.0.0.1:0",
      api: (req, res) => {
        apiCalls.push(`${req.method} ${req.url} ${req.headers.cookie ? "cookie" : ""}`);
        res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
      },
    });
    base = ui.url.slice(0, ui.url.indexOf("/?"));
  });
  afterAll(() => ui?.close());

  it("prints a URL with a random token and trades it for an HttpOnly, SameSite=Strict cookie", async () => {
    expect(ui.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const first = await get(ui.url);
    expect(first.status).toBe(303);
    expect(first.headers.location).toBe("/");
    const cookie = String(first.headers["set-cookie"]);
    expect(cookie).toContain(`desktopd_ui=${ui.token}`);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Strict");
    const page = await get(`${base}/`, { headers: { cookie: `desktopd_ui=${ui.token}` } });
    expect(page.status).toBe(200);
    expect(page.headers["content-type"]).toContain("text/html");
    expect(page.headers["content-security-policy"]).toContain("script-src 'self'");
    expect(page.headers["x-content-type-options"]).toBe("nosniff");
    expect(page.body).toContain('<script type="module" src="/app.js">');
    const script = await get(`${base}/app.js`, { headers: { authorization: `Bearer ${ui.token}` } });
    expect(script.status).toBe(200);
    expect(script.headers["content-type"]).toContain("text/javascript");
  });

  it("answers 401 without the token or with a wrong one", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { cookie: "desktopd_ui=nope" },
      { authorization: "Bearer nope" },
    ];
    for (const headers of attempts) {
      const r = await get(`${base}/`, { headers });
      expect(r.status).toBe(401);
      expect(r.body).not.toContain("<script");
    }
    expect((await get(`${base}/?token=${"x".repeat(43)}`)).status).toBe(401);
    expect((await get(`${base}/v1/status`)).status).toBe(401);
  });

  it("passes GET /v1/* to the control API without the token, and nothing else", async () => {
    const auth = { cookie: `desktopd_ui=${ui.token}` };
    apiCalls.length = 0;
    expect((await get(`${base}/v1/status?x=1`, { headers: auth })).body).toBe('{"ok":true}');
    expect(apiCalls).toEqual(["GET /v1/status?x=1 cookie"]);
    expect((await get(`${base}/v1/publish`, { headers: auth, method: "POST" })).status).toBe(405);
    expect((await get(`${base}/v1/publish/x`, { headers: auth, method: "DELETE" })).status).toBe(405);
    expect(apiCalls).toHaveLength(1);
  });

  it("serves only its own files: no traversal", async () => {
    const auth = { cookie: `desktopd_ui=${ui.token}` };
    for (const path of [
      "/../package.json",
      "/%2e%2e/package.json",
      "/..%2fpackage.json",
      "/etc/passwd",
      "/ui/app.js",
    ]) {
      const r = await get(base, { headers: auth, path });
      expect([path, r.status]).toEqual([path, 404]);
    }
  });

  it("refuses a Host that is not loopback (DNS rebinding) and a non-loopback listen address", async () => {
    const r = await get(`${base}/`, {
      headers: { host: "evil.example:80", cookie: `desktopd_ui=${ui.token}` },
    });
    expect(r.status).toBe(403);
    await expect(startUiServer({ listen: "0.0.0.0:0", api: () => {} })).rejects.toSatisfy((e) =>
      InvalidOptionError.isInstance(e),
    );
  });
});
