/**
 * NO_PROXY rules, as the tools that read them agree (curl, Go's httpproxy, Docker): a list split
 * on commas or spaces of `*` (everything), names (`example.com` matches it and its subdomains),
 * `.example.com` or `*.example.com` (the same), IP addresses, CIDRs (`10.0.0.0/8`, `fd00::/8`),
 * each optionally with `:port`. Names compare case-insensitively without a trailing dot.
 * Parsed once into rules; matching is pure.
 */
import { isIP } from "node:net";
import { IPv4, IPv4CidrRange, IPv6, IPv6CidrRange } from "ip-num";
import { ProxyConfigError } from "./errors.js";

export type NoProxyRule =
  | { kind: "all" }
  | { kind: "name"; name: string; port?: number }
  | { kind: "cidr"; text: string; family: 4 | 6; first: bigint; last: bigint; port?: number };

export interface NoProxy {
  readonly rules: readonly NoProxyRule[];
  /** True when a connection to `host` (a name or an address) on `port` must not use the proxy. */
  matches(host: string, port: number): boolean;
}

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, "");
}

type AddressValue = { family: 4 | 6; value: bigint };

/** Hosts matched lately, as addresses (null: a name): a proxy asks about the same few again and again. */
const recentHosts = new Map<string, AddressValue | null>();
const RECENT_HOSTS = 512;
/** Longest text of an address: a bracketed IPv6 with an embedded IPv4 (`[ffff:…:255.255.255.255]`). */
const MAX_ADDRESS_TEXT = 47;

/** `addressValue`, remembered: ip-num's parse is a measurable cost of every proxied request. */
function cachedAddressValue(host: string): AddressValue | undefined {
  const known = recentHosts.get(host);
  if (known !== undefined) return known ?? undefined;
  const value = addressValue(host);
  // Only what could be an address is kept (a host name can be 64 KiB long). Cleared when full,
  // not evicted one by one: a guest naming ever new hosts costs a parse each.
  if (host.length > MAX_ADDRESS_TEXT) return value;
  if (recentHosts.size >= RECENT_HOSTS) recentHosts.clear();
  recentHosts.set(host, value ?? null);
  return value;
}

function addressValue(host: string): AddressValue | undefined {
  const bare = host.replace(/^\[|\]$/g, "");
  const family = isIP(bare);
  if (family === 4) return { family, value: IPv4.fromDecimalDottedString(bare).getValue() };
  if (family === 6) {
    // An IPv4-mapped address (::ffff:0:0/96) is the IPv4 one, however it is spelled.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
    if (mapped) return { family: 4, value: IPv4.fromDecimalDottedString(mapped[1]!).getValue() };
    const value = IPv6.fromString(bare).getValue();
    if (value >> 32n === 0xffffn) return { family: 4, value: value & 0xffffffffn };
    return { family, value };
  }
  return undefined;
}

/** Splits `host:port`, `[v6]:port`, `v6` (colons but no brackets: no port). */
function splitPort(entry: string, key: string): { host: string; port?: number } {
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return { host: bracketed[1]!, ...portOf(bracketed[2], entry, key) };
  const colons = entry.split(":").length - 1;
  if (colons === 1) {
    const [host, port] = entry.split(":");
    return { host: host!, ...portOf(port, entry, key) };
  }
  return { host: entry };
}

function portOf(text: string | undefined, entry: string, key: string): { port?: number } {
  if (text === undefined) return {};
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port < 1 || port > 65535) {
    throw new ProxyConfigError(key, `"${entry}": port must be 1..65535`);
  }
  return { port };
}

export function parseNoProxy(text: string | readonly string[], key = "NO_PROXY"): NoProxy {
  const entries = (typeof text === "string" ? [text] : text)
    .flatMap((t) => t.split(/[\s,]+/))
    .filter(Boolean);
  const rules: NoProxyRule[] = [];
  for (const entry of entries) {
    if (entry === "*") {
      rules.push({ kind: "all" });
      continue;
    }
    // A CIDR's slash comes before any port: 10.0.0.0/8:443 is not a form anyone writes.
    if (entry.includes("/")) {
      const family = isIP(entry.slice(0, entry.indexOf("/")));
      try {
        const range =
          family === 4
            ? IPv4CidrRange.fromCidr(entry)
            : family === 6
              ? IPv6CidrRange.fromCidr(entry)
              : undefined;
        if (!range) throw new Error("not an address");
        rules.push({
          kind: "cidr",
          text: entry,
          family: family as 4 | 6,
          first: range.getFirst().getValue(),
          last: range.getLast().getValue(),
        });
      } catch {
        throw new ProxyConfigError(key, `"${entry}" is not a CIDR (e.g. 10.0.0.0/8)`);
      }
      continue;
    }
    const { host, port } = splitPort(entry, key);
    const address = addressValue(host);
    if (address) {
      rules.push({
        kind: "cidr",
        text: entry,
        family: address.family,
        first: address.value,
        last: address.value,
        ...(port ? { port } : {}),
      });
      continue;
    }
    const name = normalizeName(host.replace(/^\*?\./, ""));
    if (!/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/.test(name)) {
      throw new ProxyConfigError(key, `"${entry}" is neither a name, an address nor a CIDR`);
    }
    rules.push({ kind: "name", name, ...(port ? { port } : {}) });
  }
  return {
    rules,
    matches(host, port) {
      if (rules.length === 0) return false;
      const address = cachedAddressValue(host);
      const name = address ? undefined : normalizeName(host);
      for (const r of rules) {
        if (r.kind === "all") return true;
        if (r.port !== undefined && r.port !== port) continue;
        if (r.kind === "name") {
          if (name !== undefined && (name === r.name || name.endsWith(`.${r.name}`))) return true;
        } else if (
          address &&
          address.family === r.family &&
          address.value >= r.first &&
          address.value <= r.last
        ) {
          return true;
        }
      }
      return false;
    },
  };
}

/** A rule as NO_PROXY text again (`*`, `example.com:8080`, `10.0.0.0/8`). */
export function formatNoProxyRule(rule: NoProxyRule): string {
  if (rule.kind === "all") return "*";
  if (rule.kind === "cidr") return rule.text;
  return rule.port === undefined ? rule.name : `${rule.name}:${rule.port}`;
}
