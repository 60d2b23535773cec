/**
 * The command-line spellings of servers, forwarding rules and records — `10.0.0.53:53`,
 * `corp.example=10.0.0.53`, `db.test=10.0.0.7` — parsed here so every front end agrees.
 */
import { isIP, isIPv4 } from "node:net";
import { DnsConfigError } from "./errors.js";
import type { FixedRecord } from "./fixed.js";
import type { ForwardRule } from "./forward.js";
import { normalizeName } from "./name.js";
import type { Upstream } from "./upstream.js";

/** `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; port 53 by default. */
export function parseServer(text: string): Upstream {
  const t = text.trim();
  let host = t;
  let port = "53";
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (bracketed) {
    host = bracketed[1]!;
    port = bracketed[2] ?? "53";
  } else if (t.split(":").length === 2) {
    [host = "", port = ""] = t.split(":");
  }
  const n = Number(port);
  if (isIP(host) === 0) throw new DnsConfigError(`"${text}": expected IP[:PORT]`);
  if (!/^\d+$/.test(port) || n < 1 || n > 65535) throw new DnsConfigError(`"${text}": port must be 1..65535`);
  return { host, port: n };
}

/** `DOMAIN=IP[:PORT]`, several servers separated by commas. */
export function parseForwardRule(text: string): ForwardRule {
  const eq = text.indexOf("=");
  const domain = eq > 0 ? normalizeName(text.slice(0, eq).trim()) : "";
  if (!isDomain(domain)) throw new DnsConfigError(`"${text}": expected DOMAIN=IP[:PORT]`);
  return {
    domain,
    servers: text
      .slice(eq + 1)
      .split(",")
      .map(parseServer),
  };
}

/** `NAME=ADDRESS`: an A or AAAA record by the address's family; NAME may be `*.zone`. */
export function parseRecord(text: string): FixedRecord {
  const eq = text.indexOf("=");
  const name = eq > 0 ? normalizeName(text.slice(0, eq).trim()) : "";
  const address = text.slice(eq + 1).trim();
  if (!isDomain(name.replace(/^\*\./, ""))) throw new DnsConfigError(`"${text}": expected NAME=ADDRESS`);
  if (isIP(address) === 0) throw new DnsConfigError(`"${text}": "${address}" is not an IP address`);
  return { name, type: isIPv4(address) ? "A" : "AAAA", data: address };
}

function isDomain(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 253 &&
    name.split(".").every((l) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l))
  );
}
