/**
 * Transparent interception of guest flows (ports 80 and 443 by default): the guest opened a plain
 * connection to an address, and the proxy sends it through the upstream by *name* — HTTP by its
 * Host header (through the explicit proxy's request path), TLS by the SNI of its ClientHello,
 * tunnelled with CONNECT and never decrypted — so NO_PROXY rules by name work. A ClientHello
 * without SNI, and anything that is neither, goes by address.
 */
import type { Duplex } from "node:stream";
import { type Logger, SlabPool, systemClock } from "@desktopd/core";
import type { HttpProxy } from "./http-proxy.js";
import type { ProxySettings } from "./settings.js";
import { MAX_CLIENT_HELLO, readClientHello } from "./sni.js";
import {
  type ConnectionContext,
  type DirectConnect,
  firstReachable,
  openTunnel,
  splice,
  UpstreamError,
} from "./tunnel.js";
import { formatUpstream } from "./upstream.js";

export interface TransparentProxyOptions {
  settings: ProxySettings;
  /** Serves intercepted plain HTTP (its request path routes by Host). */
  http: HttpProxy;
  /** Bound on the guest's first bytes and on reaching the destination, ms (default 10 000). */
  timeoutMs?: number;
  direct?: DirectConnect;
  logger?: Logger;
}

export interface TransparentCounters {
  /** HTTP connections routed by Host. */
  http: number;
  /** TLS connections routed by SNI. */
  tlsByName: number;
  /** TLS without SNI, and other protocols, routed by address. */
  byAddress: number;
  /** Connections that failed: no first bytes in time, or the destination could not be had. */
  failed: number;
}

export interface TransparentProxy {
  /** Serves one intercepted guest connection that was sent to `flow.original`. */
  handle(stream: Duplex, flow: Required<Pick<ConnectionContext, "original">> & ConnectionContext): void;
  counters(): TransparentCounters;
  close(): void;
}

/** An HTTP/1.x request line starts with a method token and a space. */
const HTTP_METHOD = /^[A-Z]{3,10} /;

export function createTransparentProxy(o: TransparentProxyOptions): TransparentProxy {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const counters: TransparentCounters = { http: 0, tlsByName: 0, byAddress: 0, failed: 0 };
  const open = new Set<Duplex>();
  /** Downloads through tunnels: remote reads on their way to the client (see `splice`). */
  const readPool = new SlabPool({ maxSlabs: 64, maxFree: 8, clock: systemClock });

  const tunnel = (guest: Duplex, first: Buffer, context: TransparentFlow, name: string | undefined) => {
    const { ip, port } = context.original;
    const tls = first[0] === 0x16;
    let via = "direct";
    o.settings
      .routes(name ?? ip, port, tls)
      .then((hops) =>
        firstReachable(hops, (hop) => {
          via = hop ? formatUpstream(hop) : "direct";
          // Direct, the guest's own destination address; through an upstream, its name when known.
          const host = hop ? (name ?? ip) : ip;
          return openTunnel(host, port, hop, {
            timeoutMs,
            context,
            ...(o.direct ? { direct: o.direct } : {}),
          });
        }),
      )
      .then(
        ({ stream: remote }) => {
          if (guest.destroyed) {
            remote.destroy();
            return;
          }
          remote.write(first);
          splice(guest, remote, open, readPool);
          guest.resume();
        },
        (error: unknown) => {
          counters.failed++;
          o.logger?.info(
            {
              guest: context.client ? `${context.client.ip}:${context.client.port}` : undefined,
              dst: `${ip}:${port}`,
              name,
              via,
              err: UpstreamError.isInstance(error) ? error.message : String(error),
            },
            "transparent proxy could not reach the destination",
          );
          // No HTTP to answer with inside TLS: the guest sees its connection reset.
          guest.destroy();
        },
      );
  };

  return {
    handle(guest, context) {
      open.add(guest);
      guest.on("close", () => open.delete(guest));
      guest.on("error", () => {});
      let seen: Buffer = Buffer.alloc(0);
      const timer = setTimeout(() => {
        counters.failed++;
        guest.destroy();
      }, timeoutMs);
      const decide = (route: () => void) => {
        clearTimeout(timer);
        guest.off("data", onData);
        guest.off("end", onEnd);
        guest.pause();
        route();
      };
      const onEnd = () => {
        clearTimeout(timer);
        guest.destroy();
      };
      const onData = (chunk: Buffer) => {
        seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
        if (seen[0] === 0x16) {
          const hello = readClientHello(seen);
          if (hello.kind === "incomplete" && seen.length < MAX_CLIENT_HELLO) return;
          const name = hello.kind === "tls" ? hello.serverName : undefined;
          if (name) counters.tlsByName++;
          else counters.byAddress++;
          decide(() => tunnel(guest, seen, context, name));
          return;
        }
        // Enough to tell a request line from other bytes.
        if (seen.length < 11 && !seen.includes(0x20)) return;
        if (HTTP_METHOD.test(seen.toString("latin1", 0, 11))) {
          counters.http++;
          decide(() => {
            guest.unshift(seen);
            o.http.handle(guest, context);
            // Paused while sniffing: the HTTP parser's listener alone would not restart it.
            guest.resume();
          });
          return;
        }
        counters.byAddress++;
        decide(() => tunnel(guest, seen, context, undefined));
      };
      guest.on("data", onData);
      guest.on("end", onEnd);
    },
    counters: () => ({ ...counters }),
    close() {
      for (const s of open) s.destroy();
      open.clear();
      readPool.close();
    },
  };
}

type TransparentFlow = Required<Pick<ConnectionContext, "original">> & ConnectionContext;
