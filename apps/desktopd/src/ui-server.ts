/**
 * `desktopd run --ui ADDR:PORT`: the status page. Static files from the package's `ui/` folder
 * and the control API's GET requests, on loopback TCP behind a random token. The printed URL
 * carries the token once; the server trades it for an HttpOnly, SameSite=Strict cookie and
 * redirects to a clean URL, so the token leaves the address bar and the page's own history.
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import type { Logger } from "@desktopd/stack";
import { parseListenAddress } from "./config.js";
import { InvalidOptionError } from "./errors.js";

/** The page's files, known up front: no path from a request ever reaches the file system. */
const FILES: Record<string, { name: string; type: string }> = {
  "/": { name: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { name: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { name: "style.css", type: "text/css; charset=utf-8" },
};

// src/ and dist/ both sit beside ui/.
const UI_DIR = new URL("../ui/", import.meta.url);

const COOKIE = "desktopd_ui";

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
};

export interface UiServer {
  /** The page with its token: what to open in a browser. */
  readonly url: string;
  readonly token: string;
  close(): Promise<void>;
}

function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || (isIP(host) === 4 && host.startsWith("127."));
}

function sameToken(given: string | undefined, token: Buffer): boolean {
  if (!given) return false;
  const bytes = Buffer.from(given);
  return bytes.length === token.length && timingSafeEqual(bytes, token);
}

function cookieToken(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === COOKIE) return value.join("=");
  }
  return undefined;
}

function plain(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  res.writeHead(status, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...extra });
  res.end(`${text}\n`);
}

export async function startUiServer(options: {
  listen: string;
  /** The control API (read-only here: GET only). */
  api: RequestListener;
  token?: string;
  logger?: Logger;
}): Promise<UiServer> {
  const address = parseListenAddress(options.listen);
  if (!address || !isLoopbackHost(address.host)) {
    throw new InvalidOptionError(`--ui: "${options.listen}" is not a loopback ADDRESS:PORT`);
  }
  const token = options.token ?? randomBytes(32).toString("base64url");
  const tokenBytes = Buffer.from(token);
  const files = new Map<string, Buffer>();
  for (const [path, file] of Object.entries(FILES)) files.set(path, readFileSync(new URL(file.name, UI_DIR)));

  const server = createServer((req, res) => {
    // DNS rebinding: a page elsewhere that points a name at 127.0.0.1 sends its own Host.
    const host = (req.headers.host ?? "").replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
    if (!isLoopbackHost(host)) {
      plain(res, 403, "this page answers only on a loopback address");
      return;
    }
    const url = new URL(req.url ?? "/", "http://ui");
    const fromQuery = url.searchParams.get("token") ?? undefined;
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (fromQuery !== undefined && sameToken(fromQuery, tokenBytes) && url.pathname === "/") {
      // Trade the URL's token for a cookie the page's requests carry by themselves.
      res.writeHead(303, {
        ...SECURITY_HEADERS,
        location: "/",
        "set-cookie": `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`,
      });
      res.end();
      return;
    }
    if (!sameToken(cookieToken(req) ?? bearer ?? fromQuery, tokenBytes)) {
      plain(res, 401, "desktopd: this page needs the token printed with its URL (desktopd run --ui)");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      plain(res, 405, "the status page is read-only", { allow: "GET, HEAD" });
      return;
    }
    const file = FILES[url.pathname];
    if (file) {
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": file.type });
      res.end(req.method === "HEAD" ? undefined : files.get(url.pathname));
      return;
    }
    if (url.pathname.startsWith("/v1/") || url.pathname === "/metrics") {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
      // The control API sees only the path and query, never the cookie's token.
      req.url = url.pathname + url.search;
      options.api(req, res);
      return;
    }
    plain(res, 404, "not found");
  });
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  const { port } = server.address() as { port: number };
  const shownHost = address.host.includes(":") ? `[${address.host}]` : address.host;
  const url = `http://${shownHost}:${port}/?token=${token}`;
  options.logger?.info(
    { url: `http://${shownHost}:${port}/` },
    "status page serving (its token is printed on stdout)",
  );
  return {
    url,
    token,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
