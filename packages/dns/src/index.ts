/**
 * @desktopd/dns — a layered DNS server for guests. First match wins: fixed names
 * (`host.docker.internal`, configured records, wildcards), a live registry of guest and container
 * names with PTR answers, per-domain forwarding (split horizon), then the host's own resolution
 * (its nameservers, re-read when resolv.conf changes, or the OS resolver for A/AAAA).
 * Served on a host UDP/TCP socket, or on the stack's gateway with `gatewayDnsPolicy`.
 *
 * @example
 * ```ts
 * import { createDnsServer } from "@desktopd/dns";
 *
 * const dns = await createDnsServer({
 *   hostAddress: "192.168.65.254",
 *   records: [{ name: "*.test.internal", type: "A", data: "10.0.0.7" }],
 *   forward: [{ domain: "corp.example", servers: [{ host: "10.0.0.53", port: 53 }] }],
 *   listen: { host: "127.0.0.1", port: 5353 },
 * });
 * dns.registry.register("web.containers.internal", "192.168.65.7");
 * // dig @127.0.0.1 -p 5353 host.docker.internal
 * ```
 */

export type { Clock, Logger } from "@desktopd/core";
export type { StoreCounters } from "./bounded-map.js";
export { type CacheCounters, type CacheOptions, DnsCache } from "./cache.js";
export {
  createDns,
  createDnsServer,
  type Dns,
  type DnsOptions,
  type DnsReconfiguration,
  type DnsServer,
} from "./create.js";
export { DnsConfigError, DnsError, DnsSocketError, UpstreamError } from "./errors.js";
export { createFixedLayer, type FixedLayerOptions, type FixedRecord, type FixedRecordType } from "./fixed.js";
export { createForwardLayer, type ForwardLayerOptions, type ForwardRule } from "./forward.js";
export { Forwarder, type ForwarderOptions } from "./forwarder.js";
export { type GatewayDnsPolicy, type GuestFlow, gatewayDnsPolicy } from "./gateway.js";
export { createDnsHandler, type DnsCounters, type DnsHandler, type HandlerOptions } from "./handler.js";
export {
  createHostLayer,
  type HostLayer,
  type HostLayerOptions,
  type HostMode,
  type LookupFunction,
} from "./host.js";
export { type Layer, RCODES, type Rcode, type Resolution } from "./layer.js";
export { encodeResponse, type Query, udpLimit, type Vetted, vetQuery } from "./message.js";
export { ipToReverseName, normalizeName, reverseNameToIp } from "./name.js";
export {
  type AddressNames,
  addressNames,
  NameBook,
  type NameBookCounters,
  type NameBookOptions,
} from "./name-book.js";
export { parseForwardRule, parseRecord, parseServer } from "./parse.js";
export type { QueryLogEntry } from "./query-log.js";
export {
  createRegistry,
  type NameRegistry,
  type RegisterOptions,
  type RegistryEntry,
  type RegistryOptions,
} from "./registry.js";
export { parseResolvConf } from "./resolv-conf.js";
export { type Answered, createResolver, type Resolver } from "./resolver.js";
export { type DnsListener, type ListenOptions, listenDns } from "./server.js";
export type { TcpCounters } from "./tcp-stream.js";
export { queryUpstream, type Upstream } from "./upstream.js";
