/**
 * The system's proxy settings where the system keeps them, not in the environment: macOS
 * (`scutil --proxy`, the System Settings → Network → Proxies values) and Windows (the per-user
 * WinINet values under HKCU\...\Internet Settings, through `reg query`). No maintained package
 * reads both (`get-proxy-settings` is Windows-only and unmaintained), so the two outputs are parsed
 * here, purely. They are tested on their documented formats; this project's CI runs on Linux,
 * where the environment is the convention and `readSystemProxy` answers undefined.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { parseNoProxy } from "./no-proxy.js";
import type { ProxyConfig } from "./settings.js";
import { parseUpstream, type Upstream } from "./upstream.js";

const run = promisify(execFile);

export interface SystemProxy {
  config: ProxyConfig;
  /** A PAC file URL the system points at, when automatic configuration is on. */
  pac?: string;
  source: "macos" | "windows";
}

function upstream(
  host: string | undefined,
  port: string | undefined,
  scheme: "http" | "socks5",
): Upstream | undefined {
  if (!host) return undefined;
  try {
    return parseUpstream(`${scheme}://${host}${port ? `:${port}` : ""}`, "system");
  } catch {
    return undefined;
  }
}

/** `scutil --proxy` output: a dictionary of `Key : value` lines and an `ExceptionsList` array. */
export function parseScutilProxy(text: string): SystemProxy {
  const values = new Map<string, string>();
  const exceptions: string[] = [];
  let inExceptions = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (/^ExceptionsList\s*:\s*<array>\s*\{$/.test(line)) {
      inExceptions = true;
      continue;
    }
    if (inExceptions) {
      if (line === "}") inExceptions = false;
      else {
        const m = /^\d+\s*:\s*(.+)$/.exec(line);
        if (m) exceptions.push(m[1]!.trim());
      }
      continue;
    }
    const m = /^(\w+)\s*:\s*(.*)$/.exec(line);
    if (m) values.set(m[1]!, m[2]!.trim());
  }
  const on = (key: string) => values.get(key) === "1";
  const config: ProxyConfig = { noProxy: parseNoProxy([]) };
  const http = on("HTTPEnable")
    ? upstream(values.get("HTTPProxy"), values.get("HTTPPort"), "http")
    : undefined;
  const https = on("HTTPSEnable")
    ? upstream(values.get("HTTPSProxy"), values.get("HTTPSPort"), "http")
    : undefined;
  const socks = on("SOCKSEnable")
    ? upstream(values.get("SOCKSProxy"), values.get("SOCKSPort"), "socks5")
    : undefined;
  if (http) config.http = http;
  if (https) config.https = https;
  if (socks) config.all = socks;
  // macOS writes "169.254/16" and "*.local"; NO_PROXY syntax wants whole addresses.
  const rules = exceptions.map(normalizeException).filter((e): e is string => e !== undefined);
  if (on("ExcludeSimpleHostnames")) rules.push("localhost");
  config.noProxy = safeNoProxy(rules);
  const pacUrl = on("ProxyAutoConfigEnable") ? values.get("ProxyAutoConfigURLString") : undefined;
  return { config, ...(pacUrl ? { pac: pacUrl } : {}), source: "macos" };
}

/** `reg query "HKCU\Software\Microsoft\Windows\CurrentVersion\Internet Settings"` output. */
export function parseWindowsInternetSettings(text: string): SystemProxy {
  const values = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s+(\w+)\s+REG_\w+\s+(.*)$/.exec(line);
    if (m) values.set(m[1]!, m[2]!.trim());
  }
  const config: ProxyConfig = { noProxy: parseNoProxy([]) };
  const enabled = Number(values.get("ProxyEnable") ?? "0") !== 0;
  const server = values.get("ProxyServer");
  if (enabled && server) {
    // "host:port" for every protocol, or "http=h:p;https=h:p;socks=h:p".
    if (!server.includes("=")) {
      const u = upstream(...splitHostPort(server), "http");
      if (u) {
        config.http = u;
        config.https = u;
      }
    } else {
      for (const part of server.split(";")) {
        const [scheme, address] = part.split("=");
        if (!scheme || !address) continue;
        const s = scheme.trim().toLowerCase();
        const u = upstream(...splitHostPort(address.trim()), s === "socks" ? "socks5" : "http");
        if (!u) continue;
        if (s === "http") config.http = u;
        else if (s === "https") config.https = u;
        else if (s === "socks") config.all = u;
      }
    }
  }
  const override = values.get("ProxyOverride") ?? "";
  const rules = override
    .split(";")
    .map((e) => e.trim())
    .flatMap((e) => (e === "<local>" ? ["localhost"] : [normalizeException(e)]))
    .filter((e): e is string => e !== undefined && e !== "");
  config.noProxy = safeNoProxy(rules);
  const pac = values.get("AutoConfigURL");
  return { config, ...(pac ? { pac } : {}), source: "windows" };
}

function splitHostPort(text: string): [string | undefined, string | undefined] {
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(text);
  return m ? [m[1] ? `[${m[1]}]` : m[2], m[3]] : [undefined, undefined];
}

/** A macOS or Windows exception as a NO_PROXY entry: "169.254/16" → "169.254.0.0/16"; "*.local" stays. */
function normalizeException(e: string): string | undefined {
  const short = /^(\d+(?:\.\d+){0,3})\/(\d+)$/.exec(e);
  if (short) {
    const parts = short[1]!.split(".");
    while (parts.length < 4) parts.push("0");
    return `${parts.join(".")}/${short[2]}`;
  }
  // Windows allows "10.*": the addresses starting so, as a CIDR when it is whole octets.
  const wild = /^(\d+(?:\.\d+){0,2})\.\*$/.exec(e);
  if (wild) {
    const parts = wild[1]!.split(".");
    const bits = parts.length * 8;
    while (parts.length < 4) parts.push("0");
    return `${parts.join(".")}/${bits}`;
  }
  return e || undefined;
}

/** Entries that do not parse are left out rather than losing the whole list. */
function safeNoProxy(entries: string[]) {
  return parseNoProxy(
    entries.filter((e) => {
      try {
        parseNoProxy([e]);
        return true;
      } catch {
        return false;
      }
    }),
  );
}

/**
 * The system's settings on macOS or Windows, read now; undefined elsewhere (use the environment)
 * or when the command fails.
 */
export async function readSystemProxy(
  platform: NodeJS.Platform = process.platform,
): Promise<SystemProxy | undefined> {
  try {
    if (platform === "darwin")
      return parseScutilProxy((await run("scutil", ["--proxy"], { timeout: 5000 })).stdout);
    if (platform === "win32") {
      const key = "HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Internet Settings";
      return parseWindowsInternetSettings((await run("reg", ["query", key], { timeout: 5000 })).stdout);
    }
  } catch {
    return undefined;
  }
  return undefined;
}
