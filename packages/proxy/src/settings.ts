/**
 * Which upstream a connection takes: the host's proxy settings as the environment gives them
 * (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`, lower case first, as curl and Go read
 * them), or as set explicitly. `ProxySettings` holds the current ones and tells listeners when
 * they change, so connections already open keep the upstream they started with and new ones
 * take the new one.
 */
import { EventEmitter } from "node:events";
import { formatNoProxyRule, type NoProxy, parseNoProxy } from "./no-proxy.js";
import type { Hop, PacScript } from "./pac.js";
import { formatUpstream, parseUpstream, type Upstream } from "./upstream.js";

export interface ProxyConfig {
  /** For plain HTTP (`http://` URLs). */
  http?: Upstream;
  /** For TLS and CONNECT (`https://` URLs, port 443 by default). */
  https?: Upstream;
  /** For anything the two above do not name (ALL_PROXY). */
  all?: Upstream;
  noProxy: NoProxy;
  /** A PAC script: consulted for every destination NO_PROXY leaves, before the upstreams above. */
  pac?: PacScript;
}

/** Reads one variable, lower case first (the upper-case HTTP_PROXY is settable by CGI's Proxy header). */
function variable(env: NodeJS.ProcessEnv, name: string): [string, string] | undefined {
  for (const key of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[key];
    if (value !== undefined && value.trim() !== "") return [key, value];
  }
  return undefined;
}

/** The proxy configuration of an environment; throws ProxyConfigError naming the variable. */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const config: ProxyConfig = { noProxy: parseNoProxy([]) };
  for (const [field, name] of [
    ["http", "http_proxy"],
    ["https", "https_proxy"],
    ["all", "all_proxy"],
  ] as const) {
    const found = variable(env, name);
    if (found) config[field] = parseUpstream(found[1], found[0]);
  }
  const noProxy = variable(env, "no_proxy");
  if (noProxy) config.noProxy = parseNoProxy(noProxy[1], noProxy[0]);
  return config;
}

/**
 * The upstream for a connection to `host:port`, or undefined for a direct one. `tls` says the
 * guest speaks TLS (CONNECT, or HTTPS seen on 443), so HTTPS_PROXY applies.
 */
export function upstreamFor(
  config: ProxyConfig,
  host: string,
  port: number,
  tls: boolean,
): Upstream | undefined {
  if (config.noProxy.matches(host, port)) return undefined;
  return (tls ? config.https : config.http) ?? config.all;
}

export interface ProxySettingsEvents {
  /** The settings changed; `previous` is what connections opened before use. */
  changed: [current: ProxyConfig, previous: ProxyConfig];
}

/** The current proxy configuration, replaced as a whole and announced. */
export class ProxySettings extends EventEmitter<ProxySettingsEvents> {
  private config: ProxyConfig;
  private readonly alwaysDirect: NoProxy | undefined;

  /**
   * `alwaysDirect`: destinations that never go through an upstream whatever the settings say —
   * an embedder's own names and addresses, which no upstream proxy could reach.
   */
  constructor(initial: ProxyConfig = { noProxy: parseNoProxy([]) }, o: { alwaysDirect?: NoProxy } = {}) {
    super();
    this.config = initial;
    this.alwaysDirect = o.alwaysDirect;
  }

  get current(): ProxyConfig {
    return this.config;
  }

  /** Replaces the configuration; emits `changed` unless it is the same. */
  set(next: ProxyConfig): void {
    const previous = this.config;
    // Compared with credentials: a new password is a change even though logs show the same line.
    if (sameConfig(previous, next)) return;
    this.config = next;
    this.emit("changed", next, previous);
  }

  upstreamFor(host: string, port: number, tls: boolean): Upstream | undefined {
    if (this.alwaysDirect?.matches(host, port)) return undefined;
    return upstreamFor(this.config, host, port, tls);
  }

  /**
   * The hops to try for a connection, in order (`undefined`: direct): the PAC script's answer
   * when there is one, else the one upstream `upstreamFor` picks. `url` is what PAC sees (default
   * `http://host:port/`, or `https://host/` for TLS, whose path a proxy never sees either).
   */
  async routes(host: string, port: number, tls: boolean, url?: string): Promise<Hop[]> {
    const config = this.config;
    if (this.alwaysDirect?.matches(host, port) || config.noProxy.matches(host, port)) return [undefined];
    if (config.pac) {
      const bare = host.includes(":") ? `[${host}]` : host;
      const defaultPort = tls ? 443 : 80;
      const target = url ?? `${tls ? "https" : "http"}://${bare}${port === defaultPort ? "" : `:${port}`}/`;
      return config.pac.find(target, host);
    }
    return [upstreamFor(config, host, port, tls)];
  }

  /** Whether any upstream or PAC script is configured (else every connection goes direct). */
  get hasUpstream(): boolean {
    const c = this.config;
    return c.http !== undefined || c.https !== undefined || c.all !== undefined || c.pac !== undefined;
  }
}

function sameConfig(a: ProxyConfig, b: ProxyConfig): boolean {
  const key = (c: ProxyConfig) =>
    JSON.stringify([c.http, c.https, c.all, c.noProxy.rules], (_k, v) =>
      typeof v === "bigint" ? v.toString() : v,
    );
  return a.pac === b.pac && key(a) === key(b);
}

/** A one-line summary without passwords, for logs and status. */
export function describeConfig(c: ProxyConfig): string {
  const parts: string[] = [];
  if (c.http) parts.push(`http=${formatUpstream(c.http)}`);
  if (c.https) parts.push(`https=${formatUpstream(c.https)}`);
  if (c.all) parts.push(`all=${formatUpstream(c.all)}`);
  if (c.pac) parts.push(`pac=${c.pac.source}`);
  const rules = c.noProxy.rules.map(formatNoProxyRule);
  if (rules.length > 0) parts.push(`no_proxy=${rules.join(",")}`);
  return parts.length > 0 ? parts.join(" ") : "direct";
}
