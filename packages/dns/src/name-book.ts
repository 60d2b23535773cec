/**
 * Which names an address stands for, per guest, as this server told that guest: an egress
 * policy with rules by name ("deny *.example.com") sees only the destination address of a
 * connection, and asks here. Every A/AAAA answer a client gets is recorded — the question's name
 * and each CNAME target on the way to the address — until its TTL is up, clamped to
 * [`minTtl`, `maxTtl`]: a guest keeps using an address for a while after its TTL, and no record
 * is kept for ever. Bounded by entries, bytes, and names per address.
 *
 * Advisory by nature: a guest that connects to an address it never asked for has no names here.
 */
import { isIPv4, isIPv6 } from "node:net";
import { type Clock, systemClock } from "@desktopd/core";
import type { Answer, Question } from "dns-packet";
import { BoundedMap, type StoreCounters } from "./bounded-map.js";
import { canonicalIpv6, normalizeName } from "./name.js";
import { estimateBytes } from "./size.js";

export interface NameBookOptions {
  /** Shortest a name is remembered for an address, seconds (default 60). */
  minTtl?: number;
  /** Longest a name is remembered for an address, seconds (default 3600). */
  maxTtl?: number;
  /** (client, address) pairs kept before the least recently answered go (default 50 000). */
  maxEntries?: number;
  /** Estimated bytes kept before the least recently answered go (default 4 MiB). */
  maxBytes?: number;
  /**
   * Names kept for one address of one client (default 32): a wildcard zone can point any number
   * of names at one address; beyond it the least recently answered name goes.
   */
  maxNamesPerAddress?: number;
  clock?: Clock;
}

/** One address an answer gave, the names that lead to it, and the TTL of its record. */
export interface AddressNames {
  address: string;
  names: string[];
  ttl: number;
}

export interface NameBookCounters extends StoreCounters {
  /** Addresses recorded from answers (each time, renewals included). */
  recorded: number;
  /** Names dropped for `maxNamesPerAddress`. */
  namesDropped: number;
}

interface Entry {
  /** Name → when it is forgotten (clock ms); insertion order is recency. */
  names: Map<string, number>;
  /** The latest of those. */
  until: number;
}

/** A name is renewed once its expiry would move by this much, ms. */
const RENEW_MS = 1000;

/** CNAME hops followed from the question's name (a loop ends sooner). */
const MAX_CHAIN = 16;

/**
 * The addresses `answers` give for `qname`: the A/AAAA records on its CNAME chain, each with the
 * names from `qname` to the record's owner. Records off the chain (whatever else an upstream put
 * in its answer section) are not the guest's answer and are left out.
 */
export function addressNames(qname: string, answers: readonly Answer[]): AddressNames[] {
  if (!answers.some((a) => a.type === "A" || a.type === "AAAA")) return [];
  const cnames = new Map<string, string>();
  for (const a of answers) {
    const owner = normalizeName(a.name);
    if (a.type === "CNAME" && !cnames.has(owner)) cnames.set(owner, normalizeName(a.data));
  }
  const chain = [normalizeName(qname)];
  for (let target = cnames.get(chain[0]!); target !== undefined && chain.length <= MAX_CHAIN; ) {
    if (chain.includes(target)) break;
    chain.push(target);
    target = cnames.get(target);
  }
  const out: AddressNames[] = [];
  for (const a of answers) {
    if (a.type !== "A" && a.type !== "AAAA") continue;
    const at = chain.indexOf(normalizeName(a.name));
    const address = canonicalAddress(a.data);
    if (at < 0 || address === undefined) continue;
    out.push({ address, names: chain.slice(0, at + 1), ttl: a.ttl ?? 0 });
  }
  return out;
}

export class NameBook {
  private readonly entries: BoundedMap<string, Entry>;
  private readonly clock: Clock;
  private readonly minTtl: number;
  private readonly maxTtl: number;
  private readonly maxNames: number;
  private recorded = 0;
  private namesDropped = 0;

  constructor(o: NameBookOptions = {}) {
    this.clock = o.clock ?? systemClock;
    this.minTtl = o.minTtl ?? 60;
    this.maxTtl = Math.max(this.minTtl, o.maxTtl ?? 3600);
    this.maxNames = Math.max(1, o.maxNamesPerAddress ?? 32);
    this.entries = new BoundedMap({
      maxEntries: o.maxEntries ?? 50_000,
      maxBytes: o.maxBytes ?? 4 * 1024 * 1024,
    });
  }

  /** Records what `answers` told `client` (its address) for `question`. */
  record(client: string, question: Question, answers: readonly Answer[]): void {
    this.add(client, addressNames(question.name, answers));
  }

  /** Records addresses already found by `addressNames` (the server keeps them with replayed responses). */
  add(client: string, found: readonly AddressNames[]): void {
    if (found.length === 0) return;
    const now = this.clock.now();
    const who = canonicalAddress(client) ?? client;
    for (const f of found) {
      const key = `${who}|${f.address}`;
      const ttl = Math.min(this.maxTtl, Math.max(this.minTtl, f.ttl));
      const expiresAt = now + ttl * 1000;
      this.recorded++;
      const known = this.entries.get(key);
      // The same answer again (a client repeating its query): a name's expiry moves in steps of
      // RENEW_MS at the least, so a flood of one query does not rewrite the book every time.
      if (known && renewed(known, f.names, expiresAt - RENEW_MS)) {
        this.entries.touch(key);
        continue;
      }
      this.write(key, known, f.names, expiresAt, now);
    }
  }

  /** Names `client` was given for `address` that it may still be using; [] when none. */
  namesFor(client: string, address: string): string[] {
    const ip = canonicalAddress(address);
    if (ip === undefined) return [];
    const key = `${canonicalAddress(client) ?? client}|${ip}`;
    const e = this.entries.get(key);
    if (!e) return [];
    const now = this.clock.now();
    if (e.until <= now) {
      this.entries.expire(key);
      return [];
    }
    const names: string[] = [];
    for (const [name, until] of e.names) if (until > now) names.push(name);
    return names;
  }

  clear(): void {
    this.entries.clear();
  }

  private write(
    key: string,
    known: Entry | undefined,
    names: readonly string[],
    expiresAt: number,
    now: number,
  ) {
    // One stale entry goes per write, so the book does not wait for eviction to let it go.
    const oldest = this.entries.oldestKey();
    if (oldest !== undefined && oldest !== key && (this.entries.get(oldest)?.until ?? now) <= now) {
      this.entries.expire(oldest);
    }
    const e = known ?? { names: new Map<string, number>(), until: 0 };
    for (const name of names) {
      const was = e.names.get(name) ?? 0;
      e.names.delete(name);
      e.names.set(name, Math.max(was, expiresAt));
    }
    for (const [name, until] of e.names) {
      if (e.names.size <= this.maxNames) break;
      e.names.delete(name);
      if (until > now) this.namesDropped++;
    }
    e.until = Math.max(...e.names.values());
    this.entries.set(key, e, entryBytes(key, e));
  }

  get size(): number {
    return this.entries.size;
  }

  counters(): NameBookCounters {
    return { ...this.entries.counters(), recorded: this.recorded, namesDropped: this.namesDropped };
  }
}

/** Every one of `names` is kept past `after` already. */
function renewed(e: Entry, names: readonly string[], after: number): boolean {
  for (const n of names) if ((e.names.get(n) ?? 0) <= after) return false;
  return true;
}

/**
 * One spelling per address, so the stack's "fd00::1" finds a record's "FD00:0::1". A zone index
 * ("fe80::1%eth0") names a link of this host, not an address an answer can carry.
 */
function canonicalAddress(ip: string): string | undefined {
  if (isIPv4(ip)) return ip;
  return isIPv6(ip) && !ip.includes("%") ? canonicalIpv6(ip) : undefined;
}

/** The key, the entry with its Map of names (a small Map is ~200 bytes), and per name its string and slot. */
function entryBytes(key: string, e: Entry): number {
  let bytes = estimateBytes(key) + 260;
  for (const name of e.names.keys()) bytes += estimateBytes(name) + 40;
  return bytes;
}
