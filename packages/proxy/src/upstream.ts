/**
 * An upstream proxy as a URL names it: `http://user:pass@proxy:3128`, `https://proxy:443`,
 * `socks5://proxy:1080` (names resolved here) or `socks5h://...` (names resolved by the proxy).
 * Pure parsing; credentials are kept apart so they never reach a log line.
 */
import { isIP } from "node:net";
import { ProxyConfigError } from "./errors.js";

export type UpstreamProtocol = "http" | "https" | "socks5" | "socks5h";

export interface Upstream {
  protocol: UpstreamProtocol;
  host: string;
  port: number;
  /** Basic auth (HTTP/HTTPS) or username/password (RFC 1929, SOCKS5). */
  auth?: { username: string; password: string };
}

const DEFAULT_PORTS: Record<UpstreamProtocol, number> = { http: 80, https: 443, socks5: 1080, socks5h: 1080 };

/**
 * Parses a proxy URL; a bare `host:port` is taken as http, as curl and most tools do.
 * `key` names the setting in errors (`HTTPS_PROXY`, `upstreamProxy`).
 */
export function parseUpstream(text: string, key = "proxy"): Upstream {
  const trimmed = text.trim();
  if (trimmed === "") throw new ProxyConfigError(key, "is empty");
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `http://${trimmed}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new ProxyConfigError(key, `"${redact(trimmed)}" is not a proxy URL`);
  }
  const protocol = url.protocol.slice(0, -1).toLowerCase();
  if (!(protocol in DEFAULT_PORTS)) {
    throw new ProxyConfigError(key, `unsupported scheme "${protocol}" (http, https, socks5 or socks5h)`);
  }
  if (url.hostname === "") throw new ProxyConfigError(key, `"${redact(trimmed)}" names no host`);
  if ((url.pathname !== "" && url.pathname !== "/") || url.search || url.hash) {
    throw new ProxyConfigError(
      key,
      `"${redact(trimmed)}" has a path, query or fragment; a proxy URL has none`,
    );
  }
  // WHATWG URLs accept port 0, which no proxy listens on.
  if (url.port === "0") throw new ProxyConfigError(key, `"${redact(trimmed)}": port must be 1..65535`);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const upstream: Upstream = {
    protocol: protocol as UpstreamProtocol,
    host,
    port: url.port === "" ? DEFAULT_PORTS[protocol as UpstreamProtocol] : Number(url.port),
  };
  if (url.username !== "" || url.password !== "") {
    upstream.auth = {
      username: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
    };
  }
  return upstream;
}

/** The URL again, with the password replaced: what logs and status show. */
export function formatUpstream(u: Upstream): string {
  const host = isIP(u.host) === 6 ? `[${u.host}]` : u.host;
  const auth = u.auth ? `${encodeURIComponent(u.auth.username)}:***@` : "";
  return `${u.protocol}://${auth}${host}:${u.port}`;
}

/** The text with any password hidden, for error messages about a URL that did not parse. */
function redact(text: string): string {
  return text.replace(/(\/\/[^:/@]*):[^@/]*@/, "$1:***@");
}
