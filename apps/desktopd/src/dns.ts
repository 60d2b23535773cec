/**
 * The guests' DNS server (`@desktopd/dns`) on the gateway address, port 53, UDP and TCP — the
 * address DHCP and `--configure` hand out. Kept apart from daemon.ts: the daemon only asks for
 * the policy and binds it once the stack knows its addresses.
 */
import {
  createDns,
  type Dns,
  type DnsOptions,
  gatewayDnsPolicy,
  type Layer,
  NameBook,
  normalizeName,
  parseForwardRule,
  parseRecord,
  parseServer,
  type QueryLogEntry,
  type Resolution,
  reverseNameToIp,
} from "@desktopd/dns";
import type { FlowPolicy, LeaseInfo, Logger, StackConfig } from "@desktopd/stack";
import type { RunConfig } from "./config.js";

export type GuestDnsConfig = Pick<RunConfig, "dnsRecord" | "dnsForward" | "dnsUpstream"> &
  Partial<Pick<RunConfig, "dnsHostMode">>;

export interface GuestDns {
  /** The stack's policy: DNS to the gateway first, then `next` (the caller's own policy). */
  policy(next?: FlowPolicy): FlowPolicy;
  /**
   * Starts serving with this stack's addresses (gateway, host address, subnet) and the names
   * guests ask for in DHCP (`leases`, read at each query). Once.
   */
  bind(net: StackConfig, leases?: () => LeaseInfo[]): Dns;
  /**
   * Names each guest was given for each address (`names.namesFor(guestIp, dstIp)`), for an egress
   * policy by name. There before `bind`, so a policy made with the stack can hold it.
   */
  readonly names: NameBook;
  /** Calls `listener` with every answered query (metrics); returns the unsubscribe function. */
  observeQueries(listener: (entry: QueryLogEntry) => void): () => void;
  /** Applies changed records, forwarding and upstream while serving (config reload); after `bind`. */
  reconfigure(config: GuestDnsConfig): void;
  close(): void;
}

/** Options were validated by the config schema, so parsing here does not fail. */
export function guestDnsOptions(config: GuestDnsConfig, net: StackConfig, logger?: Logger): DnsOptions {
  return {
    hostAddress: net.ipv6 ? [net.hostAddress, net.ipv6.hostAddress] : net.hostAddress,
    gatewayAddress: net.ipv6 ? [net.gateway, net.ipv6.gateway] : net.gateway,
    records: config.dnsRecord.map(parseRecord),
    forward: config.dnsForward.map(parseForwardRule),
    registry: { subnets: [net.subnet] },
    // The stack would fragment a larger answer, but fragments are what resolvers and middleboxes
    // handle worst (DNS flag day 2020): answers over 1232 bytes, or over the link, are truncated
    // and the guest asks again over TCP.
    server: { maxUdpSize: Math.min(1232, net.mtu - 28) },
    // --dns-upstream replaces the host's resolution altogether, the OS resolver included;
    // otherwise A/AAAA go through the OS resolver, as Docker Desktop does, unless the user
    // asks for resolv.conf's nameservers alone.
    host: config.dnsUpstream
      ? { mode: "nameservers", nameservers: [parseServer(config.dnsUpstream)] }
      : { mode: config.dnsHostMode ?? "os" },
    ...(logger ? { logger } : {}),
  };
}

export function createGuestDns(config: GuestDnsConfig, daemonLogger?: Logger): GuestDns {
  // The DNS server's lines carry component=dns.
  const logger = daemonLogger?.child({ component: "dns" });
  let dns: Dns | undefined;
  let bound: FlowPolicy | undefined;
  let net: StackConfig | undefined;
  const names = new NameBook();
  const observers = new Set<(entry: QueryLogEntry) => void>();
  return {
    names,
    observeQueries(listener) {
      observers.add(listener);
      return () => observers.delete(listener);
    },
    policy(next) {
      return {
        tcp: (flow) => bound?.tcp?.(flow) ?? next?.tcp?.(flow),
        udp: (flow) => bound?.udp?.(flow) ?? next?.udp?.(flow),
      };
    },
    bind(stackNet, leases) {
      net = stackNet;
      const options = guestDnsOptions(config, net, logger);
      dns = createDns({
        ...options,
        server: {
          ...options.server,
          onQuery: (entry) => {
            for (const observe of observers) observe(entry);
          },
        },
        ...(leases ? { localLayers: [leaseLayer(leases)] } : {}),
        names,
      });
      // A and AAAA (and PTR) answers for the two fixed addresses of the network.
      dns.registry.register("host.docker.internal", net.hostAddress);
      dns.registry.register("gateway.docker.internal", net.gateway);
      if (net.ipv6) {
        dns.registry.register("host.docker.internal", net.ipv6.hostAddress);
        dns.registry.register("gateway.docker.internal", net.ipv6.gateway);
      }
      // Over IPv6 too: the router advertises its address as the guests' DNS server (RDNSS).
      bound = gatewayDnsPolicy(dns.handler, net.ipv6 ? [net.gateway, net.ipv6.gateway] : net.gateway);
      logger?.info({ dns: `${net.gateway}:53`, upstream: upstreamName(config) }, "dns serving");
      return dns;
    },
    reconfigure(next) {
      if (!dns || !net) throw new Error("reconfigure before bind");
      const { records, forward, host } = guestDnsOptions(next, net);
      dns.reconfigure({ records, forward, host });
      logger?.info({ upstream: upstreamName(next) }, "dns reconfigured");
    },
    close() {
      bound = undefined;
      dns?.close();
      names.clear();
    },
  };
}

function upstreamName(config: GuestDnsConfig): string {
  return config.dnsUpstream ?? `host (${config.dnsHostMode ?? "os"})`;
}

/** Answer TTL of lease names: short, a guest may renumber at its next DHCP exchange. */
const LEASE_TTL = 5;

/**
 * A DHCP host name we answer: one LDH label. The guest chooses it, so a dotted one
 * ("github.com") must not take over a real name for every other guest.
 */
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The names guests send in DHCP (option 12) with the leased address, and PTR for it; read from
 * the stack's lease table at each query, so a lease that lapses stops answering.
 */
export function leaseLayer(leases: () => LeaseInfo[]): Layer {
  return {
    name: "dhcp",
    // Leases come, renew and lapse without notice: no answer to a name they may claim is replayed.
    volatile(q) {
      const name = normalizeName(q.name);
      return LABEL.test(name) || reverseNameToIp(name) !== undefined;
    },
    resolve(q): Resolution | undefined {
      if ((q.class ?? "IN") !== "IN") return undefined;
      const name = normalizeName(q.name);
      const ip = q.type === "PTR" ? reverseNameToIp(name) : undefined;
      const answer = (type: "A" | "AAAA" | "PTR", data: readonly string[]): Resolution => ({
        rcode: "NOERROR",
        answers: data.map((d) => ({ name: q.name, type, class: "IN", ttl: LEASE_TTL, data: d })),
        authorities: [],
        additionals: [],
        authoritative: true,
      });
      if (ip === undefined && !LABEL.test(name)) return undefined;
      for (const l of leases()) {
        const hostname = l.hostname === undefined ? "" : normalizeName(l.hostname);
        if (!LABEL.test(hostname)) continue;
        if (ip !== undefined && (l.ip === ip || l.ipv6?.includes(ip))) return answer("PTR", [hostname]);
        if (ip === undefined && hostname === name) {
          // AAAA from the addresses the guest used on the link (SLAAC); other types: NODATA.
          if (q.type === "A") return answer("A", [l.ip]);
          if (q.type === "AAAA") return answer("AAAA", l.ipv6 ?? []);
          return answer("A", []);
        }
      }
      return undefined;
    },
  };
}
