/**
 * Idle keep-alive connections to HTTP(S) upstream proxies, kept per upstream, so that plain
 * requests reuse them: each new connection costs a round trip to the proxy, and a TLS handshake
 * on top for an `https://` one. Only a connection whose last exchange ended cleanly with
 * keep-alive comes back here. Bounded per upstream and in all; an idle connection leaves after
 * `idleMs`, or at once when the upstream closes it or sends anything unasked.
 */
import type { Duplex } from "node:stream";
import type { Upstream } from "./upstream.js";

export interface UpstreamPoolOptions {
  /** How long a connection may stay idle (default 4 s: under common servers' keep-alive timeouts). */
  idleMs?: number;
  /** Idle connections kept per upstream (default 8). */
  perUpstream?: number;
  /** Idle connections kept in all (default 32). */
  max?: number;
}

/** While idle, anything from the upstream (data, its FIN, an error) ends the connection. */
const IDLE_ENDS = ["data", "end", "close", "error"] as const;

interface Idle {
  stream: Duplex;
  timer: NodeJS.Timeout;
  drop: () => void;
}

/** One key per upstream and credentials: a connection authenticated as one user is not another's. */
export function upstreamKey(u: Upstream): string {
  return JSON.stringify([u.protocol, u.host, u.port, u.auth?.username ?? null, u.auth?.password ?? null]);
}

export class UpstreamPool {
  private readonly idle = new Map<string, Idle[]>();
  private count = 0;
  private readonly idleMs: number;
  private readonly perUpstream: number;
  private readonly max: number;

  constructor(o: UpstreamPoolOptions = {}) {
    this.idleMs = o.idleMs ?? 4000;
    this.perUpstream = o.perUpstream ?? 8;
    this.max = o.max ?? 32;
  }

  /** Idle connections held now. */
  get size(): number {
    return this.count;
  }

  /** The most recently idled connection to the upstream, or undefined; it is the caller's now. */
  take(key: string): Duplex | undefined {
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const entry = list.pop()!;
      this.forget(key, entry);
      if (!entry.stream.destroyed && entry.stream.writable) return entry.stream;
      entry.stream.destroy();
    }
    return undefined;
  }

  /** Keeps `stream` for the next request to the upstream; false (and destroyed) when full or unusable. */
  put(key: string, stream: Duplex): boolean {
    const list = this.idle.get(key) ?? [];
    if (
      stream.destroyed ||
      !stream.writable ||
      !stream.readable ||
      list.length >= this.perUpstream ||
      this.count >= this.max
    ) {
      stream.destroy();
      return false;
    }
    const entry: Idle = {
      stream,
      timer: setTimeout(() => entry.drop(), this.idleMs),
      drop: () => {
        const at = list.indexOf(entry);
        if (at >= 0) {
          list.splice(at, 1);
          this.forget(key, entry);
        }
        stream.destroy();
      },
    };
    entry.timer.unref();
    for (const event of IDLE_ENDS) stream.on(event, entry.drop);
    stream.resume();
    list.push(entry);
    this.idle.set(key, list);
    this.count++;
    return true;
  }

  /** Ends every idle connection (a settings change, or the proxy closing). */
  clear(): void {
    for (const [key, list] of this.idle) {
      for (const entry of list.splice(0)) {
        this.forget(key, entry);
        entry.stream.destroy();
      }
    }
  }

  private forget(key: string, entry: Idle): void {
    clearTimeout(entry.timer);
    for (const event of IDLE_ENDS) entry.stream.off(event, entry.drop);
    this.count--;
    if (this.idle.get(key)?.length === 0) this.idle.delete(key);
  }
}
