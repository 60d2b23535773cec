/** Composes the four layers, the cache and the server core with one options object. */

import type { Clock, Logger } from "@desktopd/core";
import { type CacheOptions, DnsCache } from "./cache.js";
import { createFixedLayer, type FixedRecord } from "./fixed.js";
import { createForwardLayer, type ForwardRule } from "./forward.js";
import { Forwarder } from "./forwarder.js";
import { createDnsHandler, type DnsHandler, type HandlerOptions } from "./handler.js";
import { createHostLayer, type HostLayer, type HostLayerOptions } from "./host.js";
import type { Layer } from "./layer.js";
import { NameBook } from "./name-book.js";
import { createRegistry, type NameRegistry, type RegistryOptions } from "./registry.js";
import { createResolver, type Resolver } from "./resolver.js";
import { type DnsListener, type ListenOptions, listenDns } from "./server.js";

export interface DnsOptions {
  /** Address of `host.docker.internal`, or its addresses (A and AAAA). */
  hostAddress?: string | readonly string[];
  /** Address of `gateway.docker.internal`, or its addresses. */
  gatewayAddress?: string | readonly string[];
  /** Fixed records (layer 1); names may be `*.zone` wildcards. */
  records?: FixedRecord[];
  /** TTL of fixed records that set none, seconds (default 60). */
  fixedTtl?: number;
  /** Layer 2: the subnets whose reverse names the registry owns, answer TTL. */
  registry?: Omit<RegistryOptions, "clock">;
  /**
   * More local layers, asked after the fixed records and before the registry, whose reverse
   * zones would otherwise answer NXDOMAIN first (e.g. names from DHCP leases).
   */
  localLayers?: Layer[];
  /** Layer 3: split-horizon rules, `corp.example` → its resolvers. */
  forward?: ForwardRule[];
  /** Layer 4, the host's resolution; `false` leaves it out (unknown names are then REFUSED). */
  host?:
    | false
    | Omit<HostLayerOptions, "forwarder" | "cache" | "timeoutMs" | "maxInflight" | "clock" | "logger">;
  /** Bound on one upstream resolution, ms (default 4000); SERVFAIL after it. */
  timeoutMs?: number;
  /** Upstream resolutions at once before further ones are SERVFAIL (default 1000). */
  maxUpstreamInflight?: number;
  cache?: Omit<CacheOptions, "clock">;
  /**
   * Where the addresses of A/AAAA answers are recorded per client, for an egress policy by name
   * (default: a `NameBook` with its defaults on `clock`; `false`: none).
   */
  names?: NameBook | false;
  /** Server core: UDP size, query log, per-client and total limits, TCP limits, replay. */
  server?: Omit<HandlerOptions, "resolver" | "logger" | "clock" | "cache" | "names">;
  clock?: Clock;
  logger?: Logger;
}

export interface Dns {
  readonly resolver: Resolver;
  readonly registry: NameRegistry;
  readonly handler: DnsHandler;
  readonly cache: DnsCache;
  /** Names each client was given for each address (unless `names: false`). */
  readonly names?: NameBook;
  /** The host layer, when configured. */
  readonly hostLayer?: HostLayer;
  /**
   * Replaces the fixed records, the forwarding rules and the host's resolution while serving
   * (a config reload). The registry, local layers, name book and query log carry on; the cache
   * and replayed responses are dropped, since they may hold answers of the old layers.
   */
  reconfigure(change: DnsReconfiguration): void;
  close(): void;
}

/** What `reconfigure` replaces; a key left out keeps its current value. */
export type DnsReconfiguration = Pick<DnsOptions, "records" | "forward" | "host">;

export function createDns(o: DnsOptions = {}): Dns {
  const clock = o.clock;
  const cache = new DnsCache({ ...o.cache, ...(clock ? { clock } : {}) });
  const forwarder = new Forwarder({
    cache,
    ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
    ...(o.maxUpstreamInflight ? { maxInflight: o.maxUpstreamInflight } : {}),
  });
  // A name registered or removed must be answered so at once, not by a response kept from before.
  const registry = createRegistry({
    ...o.registry,
    ...(clock ? { clock } : {}),
    onChange: () => {
      handler.forgetResponses();
      o.registry?.onChange?.();
    },
  });
  let current: Pick<DnsOptions, "records" | "forward" | "host"> = {
    records: o.records ?? [],
    forward: o.forward ?? [],
    host: o.host ?? {},
  };
  let host: HostLayer | undefined;
  // Fixed records first, then local names and the registry, then forwarding and the host.
  const buildLayers = (): Layer[] => {
    const built: Layer[] = [
      createFixedLayer({
        ...(o.hostAddress ? { hostAddress: o.hostAddress } : {}),
        ...(o.gatewayAddress ? { gatewayAddress: o.gatewayAddress } : {}),
        records: current.records ?? [],
        ...(o.fixedTtl !== undefined ? { ttl: o.fixedTtl } : {}),
      }),
      ...(o.localLayers ?? []),
      registry,
    ];
    if (current.forward?.length) built.push(createForwardLayer({ rules: current.forward, forwarder }));
    host = undefined;
    if (current.host !== false) {
      host = createHostLayer({
        ...current.host,
        forwarder,
        ...(clock ? { clock } : {}),
        ...(o.logger ? { logger: o.logger } : {}),
      });
      built.push(host);
    }
    return built;
  };
  // The resolver walks this array at each query: reconfigure swaps its contents in place.
  const layers = buildLayers();
  const resolver = createResolver(layers);
  const names = o.names === false ? undefined : (o.names ?? new NameBook(clock ? { clock } : {}));
  const handler = createDnsHandler({
    ...o.server,
    resolver,
    cache,
    ...(names ? { names } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
    ...(clock ? { clock } : {}),
  });
  return {
    resolver,
    registry,
    handler,
    cache,
    ...(names ? { names } : {}),
    get hostLayer() {
      return host;
    },
    reconfigure(change) {
      current = { ...current, ...change };
      const kept = new Set<Layer>([registry, ...(o.localLayers ?? [])]);
      const old = layers.splice(0, layers.length, ...buildLayers());
      for (const layer of old) if (!kept.has(layer)) layer.close?.();
      cache.clear();
      handler.forgetResponses();
    },
    close: () => resolver.close(),
  };
}

export interface DnsServer extends Omit<Dns, "close">, DnsListener {}

/** A standalone server: `createDns` behind a UDP and TCP listener on a host socket. */
export async function createDnsServer(o: DnsOptions & { listen?: ListenOptions } = {}): Promise<DnsServer> {
  const dns = createDns(o);
  let listener: DnsListener;
  try {
    listener = await listenDns(dns.handler, { ...o.listen, ...(o.logger ? { logger: o.logger } : {}) });
  } catch (e) {
    dns.close();
    throw e;
  }
  return {
    ...dns,
    host: listener.host,
    port: listener.port,
    async close() {
      await listener.close();
      dns.close();
    },
  };
}
