/**
 * Which proxy settings the daemon runs with, and what it tells guests: the upstream from the
 * control API (`desktopd proxy set`), else the config (`--upstream-proxy`, `--no-proxy`), else
 * the daemon's own environment; and the environment block that points a guest's tools at the
 * proxy on the gateway.
 */
import {
  configFromEnv,
  describeConfig,
  formatNoProxyRule,
  formatUpstream,
  type ProxyConfig,
  parseNoProxy,
  parseUpstream,
  type SystemProxy,
} from "@desktopd/proxy";
import type { Logger } from "@desktopd/stack";
import type { RunConfig } from "./config.js";

/** The explicit proxy's port on the gateway, as Docker Desktop's `http.docker.internal:3128`. */
export const PROXY_PORT = 3128;
/** Names that resolve to the gateway for guests, so they can find the proxy. */
export const PROXY_NAMES = ["http.docker.internal", "http.desktopd.internal"] as const;

export type ProxySource = "api" | "config" | "environment" | "system";

export type ProxyKeys = Pick<RunConfig, "upstreamProxy" | "noProxy" | "proxyPac">;

/** What the API sets: an upstream URL or "direct" and/or a PAC file, optionally NO_PROXY entries. */
export interface ProxyOverride {
  upstream?: string;
  pac?: string;
  noProxy?: string[];
}

/** The settings of `keys` (or the override), and where they came from. */
export function resolveProxyConfig(
  keys: ProxyKeys,
  override: ProxyOverride | undefined,
  env: NodeJS.ProcessEnv,
  logger?: Logger,
  /** macOS's or Windows' own settings, used when the environment names no proxy. */
  system?: SystemProxy,
): { config: ProxyConfig; source: ProxySource; pac?: string } {
  const chosen =
    override ??
    (keys.upstreamProxy !== undefined || keys.proxyPac !== undefined
      ? { upstream: keys.upstreamProxy ?? "direct" }
      : undefined);
  const noProxy = override?.noProxy ?? keys.noProxy;
  if (chosen) {
    const key = override ? "upstream" : "upstreamProxy";
    const rules = parseNoProxy(noProxy ?? [], "noProxy");
    if (chosen.upstream === undefined || chosen.upstream.trim() === "direct") {
      return { config: { noProxy: rules }, source: override ? "api" : "config" };
    }
    const upstream = parseUpstream(chosen.upstream.trim(), key);
    return {
      config: { http: upstream, https: upstream, noProxy: rules },
      source: override ? "api" : "config",
    };
  }
  let fromEnv: ProxyConfig;
  try {
    fromEnv = configFromEnv(env);
  } catch (error) {
    // The environment is not the user's desktopd config: a bad variable is reported, not fatal.
    logger?.warn({ err: (error as Error).message }, "proxy variables in the environment ignored");
    fromEnv = { noProxy: parseNoProxy([]) };
  }
  if (noProxy !== undefined) fromEnv.noProxy = parseNoProxy(noProxy, "noProxy");
  const envNamesOne = fromEnv.http !== undefined || fromEnv.https !== undefined || fromEnv.all !== undefined;
  if (!envNamesOne && system) {
    const config = { ...system.config };
    if (noProxy !== undefined) config.noProxy = parseNoProxy(noProxy, "noProxy");
    return { config, source: "system", ...(system.pac ? { pac: system.pac } : {}) };
  }
  return { config: fromEnv, source: "environment" };
}

/**
 * The variables a guest's shell or container needs to use the proxy on the gateway, both cases
 * (tools disagree on which they read). NO_PROXY keeps local names and the guests' subnet off it.
 */
export function guestProxyEnv(
  config: ProxyConfig,
  subnet: string,
  ipv6Prefix?: string,
): Record<string, string> {
  const url = `http://${PROXY_NAMES[0]}:${PROXY_PORT}`;
  const user = config.noProxy.rules.map(formatNoProxyRule);
  const noProxy = [
    ...new Set([
      "localhost",
      "127.0.0.1",
      "::1",
      ".docker.internal",
      ".desktopd.internal",
      subnet,
      ...(ipv6Prefix ? [ipv6Prefix] : []),
      ...user,
    ]),
  ].join(",");
  const env: Record<string, string> = {};
  for (const [name, value] of [
    ["HTTP_PROXY", url],
    ["HTTPS_PROXY", url],
    ["NO_PROXY", noProxy],
  ] as const) {
    env[name] = value;
    env[name.toLowerCase()] = value;
  }
  return env;
}

/** The upstreams in use, for status and `desktopd proxy get` (no passwords). */
export function describeProxy(config: ProxyConfig, source: ProxySource) {
  return {
    source,
    summary: describeConfig(config),
    http: config.http ? formatUpstream(config.http) : null,
    https: config.https ? formatUpstream(config.https) : null,
    all: config.all ? formatUpstream(config.all) : null,
    noProxy: config.noProxy.rules.map(formatNoProxyRule),
  };
}
