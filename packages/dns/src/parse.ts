/**
 * The command-line spellings of servers, forwarding rules and records — `10.0.0.53:53`,
 * `corp.example=10.0.0.53`, `db.test=10.0.0.7` — parsed here so every front end agrees.
 */
import { isIP } from "node:net";
import { DnsConfigError } from "./errors.js";
import type { FixedRecord } from "./fixed.js";
import type { ForwardRule } from "./forward.js";
import { normalizeName, recordAddressFamily } from "./name.js";
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

/**
 * `NAME=ADDRESS`: an A or AAAA record by the address's family; NAME may be `*.zone`. Other types
 * name themselves: `NAME/CNAME=TARGET`, `NAME/PTR=TARGET`, `NAME/TXT=TEXT`,
 * `NAME/MX=[PREFERENCE ]EXCHANGE`, `NAME/SRV=[PRIORITY WEIGHT ]PORT TARGET`.
 */
export function parseRecord(text: string): FixedRecord {
  const eq = text.indexOf("=");
  const left = eq > 0 ? text.slice(0, eq).trim() : "";
  const slash = left.lastIndexOf("/");
  const type = slash >= 0 ? left.slice(slash + 1).toUpperCase() : "";
  const name = normalizeName(slash >= 0 ? left.slice(0, slash) : left);
  const data = text.slice(eq + 1).trim();
  if (!isDomain(name.replace(/^\*\./, ""))) {
    throw new DnsConfigError(`"${text}": expected NAME=ADDRESS or NAME/TYPE=DATA`);
  }
  const target = (what: string, value: string): string => {
    const t = normalizeName(value);
    if (!isDomain(t)) throw new DnsConfigError(`"${text}": "${value}" is not a ${what}`);
    return t;
  };
  const numbers = (fields: string[], what: string): number[] =>
    fields.map((f) => {
      const n = Number(f);
      if (!/^\d+$/.test(f) || n > 65535)
        throw new DnsConfigError(`"${text}": ${what} "${f}" must be 0..65535`);
      return n;
    });
  switch (type) {
    case "":
    case "A":
    case "AAAA": {
      const family = recordAddressFamily(data);
      if (family === 0) {
        const zoned =
          isIP(data) === 6 ? " (a zone index names a link of this host, not an address to serve)" : "";
        throw new DnsConfigError(`"${text}": "${data}" is not an IP address${zoned}`);
      }
      if (type && (type === "A") !== (family === 4)) {
        throw new DnsConfigError(`"${text}": "${data}" is not an IPv${type === "A" ? 4 : 6} address`);
      }
      return { name, type: family === 4 ? "A" : "AAAA", data };
    }
    case "CNAME":
    case "PTR":
      return { name, type, data: target("domain name", data) };
    case "TXT":
      if (Buffer.byteLength(data) > 255)
        throw new DnsConfigError(`"${text}": TXT text is longer than 255 bytes`);
      return { name, type, data };
    case "MX": {
      const f = data.split(/\s+/);
      if (f.length > 2 || !f[0])
        throw new DnsConfigError(`"${text}": expected NAME/MX=[PREFERENCE ]EXCHANGE`);
      const [preference = 10] = f.length === 2 ? numbers([f[0]], "preference") : [];
      return { name, type, data: { preference, exchange: target("mail exchange", f.at(-1)!) } };
    }
    case "SRV": {
      const f = data.split(/\s+/);
      if (f.length !== 2 && f.length !== 4) {
        throw new DnsConfigError(`"${text}": expected NAME/SRV=[PRIORITY WEIGHT ]PORT TARGET`);
      }
      const [priority = 0, weight = 0, port = 0] = numbers(
        f.length === 4 ? f.slice(0, 3) : ["0", "0", f[0]!],
        "priority, weight and port",
      );
      return { name, type, data: { priority, weight, port, target: target("target", f.at(-1)!) } };
    }
    default:
      throw new DnsConfigError(
        `"${text}": record type "${type}" is not one of A, AAAA, CNAME, PTR, TXT, MX, SRV`,
      );
  }
}

function isDomain(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= 253 &&
    name.split(".").every((l) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(l))
  );
}
