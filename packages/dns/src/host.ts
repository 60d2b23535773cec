/**
 * Layer 4: the host's own resolution, so names resolve in the guest as they do on the host.
 * "os" mode answers A/AAAA through the OS resolver (`dns.lookup`: /etc/hosts, mDNS, VPN split
 * DNS, as Docker Desktop does; a name it cannot find is checked with the nameservers, to tell
 * NXDOMAIN from NODATA) and every other type through the host's nameservers;
 * "nameservers" mode sends everything to the nameservers. The nameservers come from
 * resolv.conf, re-read when it changes, unless given explicitly.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { type FSWatcher, readFileSync, statSync, watch } from "node:fs";
import { basename, dirname } from "node:path";
import { type Clock, type Logger, silentLogger, systemClock, type Timer } from "@desktopd/core";
import type { Answer, Question } from "dns-packet";
import { DnsCache } from "./cache.js";
import { UpstreamError } from "./errors.js";
import { Forwarder, type ForwarderOptions } from "./forwarder.js";
import { type Layer, type Resolution, resolution } from "./layer.js";
import { normalizeName } from "./name.js";
import { parseResolvConf } from "./resolv-conf.js";
import type { Upstream } from "./upstream.js";

export type HostMode = "os" | "nameservers";

/** `dns.promises.lookup` with `{ all: true }`; injectable so tests control the answers. */
export type LookupFunction = (
  hostname: string,
  options: { all: true; family: 0 },
) => Promise<{ address: string; family: number }[]>;

export interface HostLayerOptions extends ForwarderOptions {
  /** Default "os". */
  mode?: HostMode;
  /** Use these instead of resolv.conf's nameservers (`--dns-upstream`). */
  nameservers?: Upstream[];
  /** Default /etc/resolv.conf. */
  resolvConfPath?: string;
  lookup?: LookupFunction;
  /** TTL of answers from the OS resolver, which reports none (default 10 s). */
  osTtl?: number;
  /** Look at resolv.conf's mtime at most this often, ms (default 1000); a change seen by inotify counts at once. */
  recheckMs?: number;
  forwarder?: Forwarder;
  clock?: Clock;
  logger?: Logger;
}

export interface HostLayer extends Layer {
  /** The nameservers in use now. */
  nameservers(): Upstream[];
}

export function createHostLayer(o: HostLayerOptions = {}): HostLayer {
  const mode = o.mode ?? "os";
  const clock = o.clock ?? systemClock;
  const log = o.logger ?? silentLogger;
  const forwarder = o.forwarder ?? new Forwarder({ ...o, clock });
  const lookup: LookupFunction = o.lookup ?? ((h, opts) => dnsLookup(h, opts));
  const osTtl = o.osTtl ?? 10;
  const path = o.resolvConfPath ?? "/etc/resolv.conf";
  const recheckMs = o.recheckMs ?? 1000;

  let servers: Upstream[] = o.nameservers ?? [];
  // Bumped on every change, so answers of the old servers are no longer found in the cache.
  let generation = 0;
  let stamp = "";
  let checkedAt = -Infinity;
  let dirty = true;
  let watcher: FSWatcher | undefined;

  const reread = () => {
    let next = "";
    try {
      const s = statSync(path);
      next = `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch {}
    if (next === stamp) return;
    stamp = next;
    let text = "";
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      log.warn({ err: e, path }, "resolv.conf unreadable; using 127.0.0.1");
    }
    servers = parseResolvConf(text);
    generation++;
    log.info({ path, nameservers: servers.map((s) => `${s.host}:${s.port}`) }, "host nameservers");
  };
  const current = (): Upstream[] => {
    if (o.nameservers) return o.nameservers;
    const now = clock.now();
    if (dirty || now - checkedAt >= recheckMs) {
      dirty = false;
      checkedAt = now;
      reread();
    }
    return servers;
  };
  if (!o.nameservers) {
    try {
      // Watch the directory: resolv.conf is usually replaced by a rename, not rewritten.
      watcher = watch(dirname(path), { persistent: false }, (_event, file) => {
        if (!file || file === basename(path)) dirty = true;
      });
      watcher.on("error", () => {});
    } catch {}
  }

  // One getaddrinfo per name at a time: A and AAAA (and many clients) share it. getaddrinfo holds
  // a libuv thread until it returns, past our deadline too: beyond the forwarder's in-flight limit
  // new names fail at once rather than queue without end behind the thread pool.
  const pendingLookups = new Map<string, Promise<{ address: string; family: number }[]>>();
  const osLookup = (name: string) => {
    let p = pendingLookups.get(name);
    if (!p) {
      if (pendingLookups.size >= forwarder.maxInflight) {
        throw new UpstreamError("busy", `${pendingLookups.size} OS lookups in flight`);
      }
      p = lookup(name, { all: true, family: 0 });
      pendingLookups.set(name, p);
      const done = () => pendingLookups.delete(name);
      p.then(done, done);
    }
    return p;
  };

  const osResolve = async (q: Question): Promise<Resolution> => {
    const key = DnsCache.key("os", q);
    const hit = forwarder.cache.get(key);
    if (hit) return hit;
    let addrs: { address: string; family: number }[];
    try {
      addrs = await bounded(osLookup(normalizeName(q.name)), forwarder.timeoutMs, clock);
    } catch (e) {
      if (UpstreamError.isInstance(e)) throw e;
      const code = (e as { code?: string }).code;
      if (code === "ENOTFOUND") return store(key, await notFound(q));
      if (code === "ENODATA") return store(key, resolution("NOERROR"));
      throw new UpstreamError("lookup", `dns.lookup(${q.name}): ${code ?? (e as Error).message}`);
    }
    const family = q.type === "A" ? 4 : 6;
    const answers = addrs
      .filter((a) => a.family === family)
      .map((a): Answer => ({ name: q.name, type: q.type as "A", class: "IN", ttl: osTtl, data: a.address }));
    // The name exists (some address came back) but not with this family: NODATA.
    return store(key, resolution("NOERROR", answers));
  };
  // getaddrinfo says ENOTFOUND both for a name that does not exist and for one that has records
  // of other types only (TXT, MX...): the nameservers tell NXDOMAIN from NODATA, so a client
  // does not conclude the name is gone. Only that: addresses the OS did not give are not handed
  // out, and without an answer from the nameservers the OS's word stands.
  const notFound = async (q: Question): Promise<Resolution> => {
    const list = current();
    if (list.length === 0) return resolution("NXDOMAIN");
    try {
      const r = await forwarder.resolve(`host:${generation}`, list, q);
      const nodata = r.rcode === "NOERROR" && !r.answers.some((a) => a.type === q.type);
      return nodata ? resolution("NOERROR", [], false, r.authorities) : resolution("NXDOMAIN");
    } catch (e) {
      if (!UpstreamError.isInstance(e)) throw e;
      return resolution("NXDOMAIN");
    }
  };
  // The OS resolver reports no TTL, positive or negative: keep either for osTtl.
  const store = (key: string, r: Resolution) => {
    forwarder.cache.set(key, r, osTtl);
    return r;
  };

  return {
    name: "host",
    steady: true,
    nameservers: () => [...current()],
    resolve(q: Question): Promise<Resolution> {
      if (mode === "os" && (q.type === "A" || q.type === "AAAA") && (q.class ?? "IN") === "IN") {
        return osResolve(q);
      }
      const list = current();
      return forwarder.resolve(`host:${generation}`, list, q);
    },
    close() {
      watcher?.close();
    },
  };
}

/** getaddrinfo cannot be cancelled; the client gets SERVFAIL at the deadline all the same. */
function bounded<T>(p: Promise<T>, ms: number, clock: Clock): Promise<T> {
  let timer: Timer | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = clock.setTimer(
      () => reject(new UpstreamError("timeout", `dns.lookup: no answer in ${ms} ms`)),
      ms,
    );
  });
  return Promise.race([p, late]).finally(() => timer?.cancel());
}
