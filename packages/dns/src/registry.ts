/**
 * Layer 2: a live registry of guest and container names. Registrations carry a lifetime and can
 * be removed; reverse names of the configured subnets answer PTR from it, and an unknown address
 * there is NXDOMAIN rather than a query leaked upstream (RFC 6303's reasoning).
 */
import { BlockList, isIPv4, isIPv6 } from "node:net";
import { type Clock, systemClock } from "@desktopd/core";
import type { Answer, Question } from "dns-packet";
import { DnsConfigError } from "./errors.js";
import { isAny, type Layer, type Resolution, resolution } from "./layer.js";
import { canonicalIpv6, normalizeName, recordAddressFamily, reverseNameToIp } from "./name.js";

export interface RegistryOptions {
  /** CIDRs whose reverse names this registry owns, e.g. the guest subnet "192.168.65.0/24". */
  subnets?: string[];
  /** TTL of answers (default 5 s: registrations change as containers come and go). */
  ttl?: number;
  clock?: Clock;
  /** Called after every registration and every removal that removed something. */
  onChange?: () => void;
}

export interface RegisterOptions {
  /** Seconds until the registration lapses unless renewed; default: until removed. */
  ttlSeconds?: number;
}

export interface RegistryEntry {
  name: string;
  address: string;
  /** Clock time it lapses, or Infinity. */
  expiresAt: number;
  /** Seconds until it lapses (rounded up), or null when it lasts until removed. */
  secondsLeft: number | null;
}

/** The registry layer, with its mutators. */
export interface NameRegistry extends Layer {
  /** Adds (or renews) `name → address`; a name may have several addresses. */
  register(name: string, address: string, options?: RegisterOptions): void;
  /** Removes one address of a name, or all of them; returns whether anything was removed. */
  remove(name: string, address?: string): boolean;
  entries(): RegistryEntry[];
}

export function createRegistry(o: RegistryOptions = {}): NameRegistry {
  const clock = o.clock ?? systemClock;
  const ttl = o.ttl ?? 5;
  // name → address → expiry
  const names = new Map<string, Map<string, number>>();
  const owned = new BlockList();
  for (const cidr of o.subnets ?? []) {
    const [ip = "", bits] = cidr.split("/");
    const family = isIPv4(ip) ? "ipv4" : isIPv6(ip) ? "ipv6" : undefined;
    const prefix = Number(bits);
    if (!family || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === "ipv4" ? 32 : 128)) {
      throw new DnsConfigError(`registry subnet: "${cidr}" is not a CIDR`);
    }
    owned.addSubnet(ip, prefix, family);
  }

  const live = (name: string): Map<string, number> | undefined => {
    const addrs = names.get(name);
    if (!addrs) return undefined;
    const now = clock.now();
    for (const [addr, expiresAt] of addrs) if (expiresAt <= now) addrs.delete(addr);
    if (addrs.size === 0) {
      names.delete(name);
      return undefined;
    }
    return addrs;
  };
  const answerTtl = (expiresAt: number) =>
    Math.max(0, Math.min(ttl, Math.floor((expiresAt - clock.now()) / 1000)));

  return {
    name: "registry",
    register(name, address, opts = {}) {
      const n = normalizeName(name);
      if (!n || n === ".") throw new DnsConfigError("registry: empty name");
      const a = canonical(address);
      const expiresAt = opts.ttlSeconds === undefined ? Infinity : clock.now() + opts.ttlSeconds * 1000;
      const addrs = names.get(n) ?? new Map<string, number>();
      addrs.set(a, expiresAt);
      names.set(n, addrs);
      o.onChange?.();
    },
    remove(name, address) {
      const n = normalizeName(name);
      const addrs = names.get(n);
      if (!addrs) return false;
      const removed = address === undefined ? names.delete(n) : addrs.delete(canonical(address));
      if (addrs.size === 0) names.delete(n);
      if (removed) o.onChange?.();
      return removed;
    },
    entries() {
      const out: RegistryEntry[] = [];
      for (const name of [...names.keys()]) {
        for (const [address, expiresAt] of live(name) ?? []) {
          const secondsLeft = expiresAt === Infinity ? null : Math.ceil((expiresAt - clock.now()) / 1000);
          out.push({ name, address, expiresAt, secondsLeft });
        }
      }
      return out;
    },
    resolve(q: Question): Resolution | undefined {
      // Local names exist in class IN only; CHAOS and friends go on to the upstreams.
      if ((q.class ?? "IN") !== "IN") return undefined;
      const name = normalizeName(q.name);
      const ip = q.type === "PTR" || isAny(q) ? reverseNameToIp(name) : undefined;
      if (ip !== undefined) {
        const answers: Answer[] = [];
        for (const n of [...names.keys()]) {
          const expiresAt = live(n)?.get(ip);
          if (expiresAt !== undefined) {
            answers.push({ name: q.name, type: "PTR", class: "IN", ttl: answerTtl(expiresAt), data: n });
          }
        }
        if (answers.length > 0) return resolution("NOERROR", answers, true);
        return owned.check(ip, isIPv4(ip) ? "ipv4" : "ipv6") ? resolution("NXDOMAIN", [], true) : undefined;
      }
      const addrs = live(name);
      if (!addrs) return undefined;
      const answers: Answer[] = [];
      for (const [addr, expiresAt] of addrs) {
        const type = isIPv4(addr) ? "A" : "AAAA";
        if (q.type === type || isAny(q)) {
          answers.push({ name: q.name, type, class: "IN", ttl: answerTtl(expiresAt), data: addr });
        }
      }
      return resolution("NOERROR", answers, true);
    },
  };
}

function canonical(address: string): string {
  const family = recordAddressFamily(address);
  if (family === 4) return address;
  if (family === 6) return canonicalIpv6(address);
  throw new DnsConfigError(`registry: "${address}" is not an IP address (IPv4, or IPv6 without a zone)`);
}
