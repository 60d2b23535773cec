/** Pure helpers over domain names: case-folding, suffix matching, reverse (PTR) names. */
import { isIPv4, isIPv6 } from "node:net";

/** Lower case without the trailing dot: names compare case-insensitively (RFC 4343). */
export function normalizeName(name: string): string {
  const n = name.toLowerCase();
  return n.endsWith(".") && n !== "." ? n.slice(0, -1) : n;
}

/** Whether `name` is `domain` or below it; both normalized. */
export function inDomain(name: string, domain: string): boolean {
  return name === domain || name.endsWith(`.${domain}`);
}

/**
 * 4 or 6 for an address a record can carry, else 0. `isIP` also takes an IPv6 zone index
 * (`fe80::1%eth0`), which names a link of this host: no DNS answer can carry it.
 */
export function recordAddressFamily(text: string): 0 | 4 | 6 {
  if (isIPv4(text)) return 4;
  return isIPv6(text) && !text.includes("%") ? 6 : 0;
}

/** The address a reverse name stands for, or undefined for anything else. */
export function reverseNameToIp(name: string): string | undefined {
  const n = normalizeName(name);
  if (n.endsWith(".in-addr.arpa")) {
    const parts = n.slice(0, -".in-addr.arpa".length).split(".");
    if (parts.length !== 4) return undefined;
    const ip = parts.reverse().join(".");
    return isIPv4(ip) ? ip : undefined;
  }
  if (n.endsWith(".ip6.arpa")) {
    const nibbles = n.slice(0, -".ip6.arpa".length).split(".");
    if (nibbles.length !== 32 || !nibbles.every((x) => /^[0-9a-f]$/.test(x))) return undefined;
    const hex = nibbles.reverse().join("");
    const ip = hex.match(/.{4}/g)!.join(":");
    return isIPv6(ip) ? canonicalIpv6(ip) : undefined;
  }
  return undefined;
}

/** The reverse name of an address: 10.0.0.1 → 1.0.0.10.in-addr.arpa. */
export function ipToReverseName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split(".").reverse().join(".")}.in-addr.arpa`;
  return `${expandIpv6(canonicalIpv6(ip)).replace(/:/g, "").split("").reverse().join(".")}.ip6.arpa`;
}

/** One spelling per IPv6 address (RFC 5952, as the WHATWG URL parser writes it) so lookups by address match. */
export function canonicalIpv6(ip: string): string {
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** All eight groups of a canonical IPv6 address, four digits each. */
export function expandIpv6(ip: string): string {
  const [head = "", tail] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const zeros = tail === undefined ? [] : Array(8 - h.length - t.length).fill("0");
  return [...h, ...zeros, ...t].map((g) => g.padStart(4, "0")).join(":");
}
