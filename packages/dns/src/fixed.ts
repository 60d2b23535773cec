/**
 * Layer 1: fixed records — `host.docker.internal`, `gateway.docker.internal` and configured
 * records, with `*.zone` wildcards. Names here are authoritative: a known name without a record
 * of the asked type is NODATA, never passed on.
 */
import type { Answer, Question } from "dns-packet";
import { DnsConfigError } from "./errors.js";
import { isAny, type Layer, type Resolution, resolution } from "./layer.js";
import { canonicalIpv6, normalizeName, recordAddressFamily } from "./name.js";

export type FixedRecordType = "A" | "AAAA" | "CNAME" | "TXT" | "SRV" | "MX" | "PTR";

/** A configured record; `name` may start with `*.` to cover every name below that zone. */
export type FixedRecord = { name: string; ttl?: number } & (
  | { type: "A" | "AAAA" | "CNAME" | "PTR"; data: string }
  | { type: "TXT"; data: string | string[] }
  | { type: "SRV"; data: { priority?: number; weight?: number; port: number; target: string } }
  | { type: "MX"; data: { preference?: number; exchange: string } }
);

export interface FixedLayerOptions {
  /** `host.docker.internal` (and `host.containers.internal`) answer this address, or these (A and AAAA). */
  hostAddress?: string | readonly string[];
  /** `gateway.docker.internal` answers this address, or these. */
  gatewayAddress?: string | readonly string[];
  records?: FixedRecord[];
  /** TTL of records that set none (default 60 s). */
  ttl?: number;
}

/** CNAME chains inside the fixed set are followed this far; a loop ends there too. */
const MAX_CHAIN = 8;

export function createFixedLayer(o: FixedLayerOptions = {}): Layer {
  const exact = new Map<string, Answer[]>();
  const wildcards = new Map<string, Answer[]>();
  const ttl = o.ttl ?? 60;
  const add = (r: FixedRecord) => {
    const name = normalizeName(r.name);
    const answer = toAnswer(r, ttl);
    const [table, key] = name.startsWith("*.") ? [wildcards, name.slice(2)] : [exact, name];
    table.set(key, [...(table.get(key) ?? []), answer]);
  };
  const list = (a: string | readonly string[] | undefined) => (a === undefined ? [] : [a].flat());
  for (const address of list(o.hostAddress)) {
    for (const name of ["host.docker.internal", "host.containers.internal"]) {
      add(addressRecord(name, address));
    }
  }
  for (const address of list(o.gatewayAddress)) add(addressRecord("gateway.docker.internal", address));
  for (const r of o.records ?? []) add(r);

  const lookup = (name: string): Answer[] | undefined => {
    const hit = exact.get(name);
    if (hit) return hit;
    // The longest wildcard zone wins: *.a.test.internal before *.test.internal.
    for (let dot = name.indexOf("."); dot >= 0; dot = name.indexOf(".", dot + 1)) {
      const w = wildcards.get(name.slice(dot + 1));
      if (w) return w;
    }
    return undefined;
  };

  return {
    name: "fixed",
    steady: true,
    resolve(q: Question): Resolution | undefined {
      // Local names exist in class IN only; CHAOS and friends go on to the upstreams.
      if ((q.class ?? "IN") !== "IN") return undefined;
      let name = normalizeName(q.name);
      let records = lookup(name);
      if (!records) return undefined;
      const answers: Answer[] = [];
      let owner = q.name;
      for (let hop = 0; records && hop < MAX_CHAIN; hop++) {
        const matching = records.filter((r) => isAny(q) || r.type === q.type);
        if (matching.length > 0 || q.type === "CNAME") {
          answers.push(...matching.map((r) => ({ ...r, name: owner }) as Answer));
          break;
        }
        const cname = records.find((r) => r.type === "CNAME");
        if (!cname) break;
        answers.push({ ...cname, name: owner } as Answer);
        owner = (cname as { data: string }).data;
        name = normalizeName(owner);
        records = lookup(name);
      }
      return resolution("NOERROR", answers, true);
    },
  };
}

function addressRecord(name: string, address: string): FixedRecord {
  const family = recordAddressFamily(address);
  if (family === 4) return { name, type: "A", data: address };
  if (family === 6) return { name, type: "AAAA", data: address };
  throw new DnsConfigError(`${name}: "${address}" is not an IP address`);
}

function toAnswer(r: FixedRecord, ttl: number): Answer {
  const base = { name: normalizeName(r.name), ttl: r.ttl ?? ttl, class: "IN" as const };
  switch (r.type) {
    case "A":
      if (recordAddressFamily(r.data) !== 4)
        throw new DnsConfigError(`${r.name}: A record "${r.data}" is not an IPv4 address`);
      return { ...base, type: "A", data: r.data };
    case "AAAA":
      if (recordAddressFamily(r.data) !== 6)
        throw new DnsConfigError(`${r.name}: AAAA record "${r.data}" is not an IPv6 address`);
      // dns-packet encodes some valid spellings as another address (::0:0:0:0:0:0:1 as ::).
      return { ...base, type: "AAAA", data: canonicalIpv6(r.data) };
    case "CNAME":
    case "PTR":
      return { ...base, type: r.type, data: normalizeName(r.data) };
    case "TXT":
      return { ...base, type: "TXT", data: r.data };
    case "SRV":
      return { ...base, type: "SRV", data: { priority: 0, weight: 0, ...r.data } };
    case "MX":
      return { ...base, type: "MX", data: { preference: 10, ...r.data } };
    default:
      throw new DnsConfigError(`${(r as FixedRecord).name}: unsupported record type`);
  }
}
