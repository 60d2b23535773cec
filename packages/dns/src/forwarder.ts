/**
 * Asks a list of nameservers in turn within one time budget, caches what they say, and
 * coalesces identical questions in flight into one upstream query. Shared by the forwarding and
 * host layers.
 */

import { type Clock, systemClock } from "@desktopd/core";
import type { Answer, DecodedPacket, Question } from "dns-packet";
import { DnsCache } from "./cache.js";
import { UpstreamError } from "./errors.js";
import { RCODES, type Rcode, type Resolution } from "./layer.js";
import { queryUpstream, type Upstream } from "./upstream.js";

export interface ForwarderOptions {
  /** Upper bound of one resolution across all servers, ms (default 4000); then SERVFAIL. */
  timeoutMs?: number;
  cache?: DnsCache;
  /**
   * Upstream resolutions at once (default 1000); beyond it a query is SERVFAIL at once, so a
   * flood of unique names at a dead upstream cannot hold every socket until its timeout.
   */
  maxInflight?: number;
  /** For the cache this forwarder makes when none is given. */
  clock?: Clock;
}

const RCODE_NAMES = Object.fromEntries(Object.entries(RCODES).map(([k, v]) => [v, k])) as Record<
  number,
  Rcode | undefined
>;

export class Forwarder {
  private readonly inflight = new Map<string, Promise<Resolution>>();
  readonly timeoutMs: number;
  readonly cache: DnsCache;
  readonly maxInflight: number;
  private readonly clock: Clock;

  constructor(o: ForwarderOptions = {}) {
    this.timeoutMs = o.timeoutMs ?? 4000;
    this.maxInflight = o.maxInflight ?? 1000;
    this.clock = o.clock ?? systemClock;
    this.cache = o.cache ?? new DnsCache({ clock: this.clock });
  }

  /** `scope` keeps answers of different server sets apart in the shared cache. */
  resolve(scope: string, servers: readonly Upstream[], q: Question): Promise<Resolution> {
    const key = DnsCache.key(scope, q);
    const hit = this.cache.get(key);
    if (hit) return Promise.resolve(hit);
    let pending = this.inflight.get(key);
    if (!pending) {
      if (this.inflight.size >= this.maxInflight) {
        return Promise.reject(new UpstreamError("busy", `${this.inflight.size} upstream queries in flight`));
      }
      pending = this.ask(servers, q).then((r) => {
        this.cache.set(key, r);
        return r;
      });
      const p = pending;
      this.inflight.set(key, p);
      void p.finally(() => this.inflight.delete(key)).catch(() => {});
    }
    return pending;
  }

  private async ask(servers: readonly Upstream[], q: Question): Promise<Resolution> {
    if (servers.length === 0) throw new UpstreamError("no-servers", "no nameservers configured");
    // Each server gets an equal share of the budget, so a dead first server cannot use it all.
    // A plain timer, cleared with the answer (AbortSignal.timeout's live on for the whole share).
    const share = this.timeoutMs / servers.length;
    let last: Error | undefined;
    for (const server of servers) {
      const abort = new AbortController();
      const timer = this.clock.setTimer(() => abort.abort(), share);
      try {
        let r = await queryUpstream(server, q, abort.signal);
        // A server that does not speak EDNS answers FORMERR (RFC 6891 §7): ask again without.
        if (((r.flags ?? 0) & 0xf) === RCODES.FORMERR)
          r = await queryUpstream(server, q, abort.signal, false);
        const rcode = RCODE_NAMES[(r.flags ?? 0) & 0xf];
        if (rcode === "NOERROR" || rcode === "NXDOMAIN") return toResolution(rcode, r);
        last = new UpstreamError("rcode", `${server.host}:${server.port} answered ${rcode ?? "rcode?"}`);
      } catch (e) {
        last = e as Error;
      } finally {
        timer.cancel();
      }
    }
    throw last ?? new UpstreamError("timeout", "no nameserver answered in time");
  }
}

function toResolution(rcode: Rcode, r: DecodedPacket): Resolution {
  const noOpt = (a: Answer) => a.type !== "OPT";
  return {
    rcode,
    answers: r.answers ?? [],
    authorities: r.authorities ?? [],
    additionals: (r.additionals ?? []).filter(noOpt),
    authoritative: false,
  };
}
