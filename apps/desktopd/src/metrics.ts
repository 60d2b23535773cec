/**
 * Prometheus metrics of a running daemon (prom-client). Values are read from the stack, the
 * switch, the forwarder and the DNS server when scraped — nothing is counted twice and no timer
 * runs for them; DNS latency is the one histogram, fed per query. A registry of its own, so an
 * embedder may run several daemons in one process.
 */
import type { DnsCounters, QueryLogEntry } from "@desktopd/dns";
import type { ForwardInfo } from "@desktopd/portfwd";
import type { HttpProxyCounters, SocksCounters, TransparentCounters } from "@desktopd/proxy";
import type { AgentRelayCounters } from "@desktopd/ssh-agent";
import type { StackCounters } from "@desktopd/stack";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export interface MetricsSource {
  /** Guest links on the switch: our names for them, never a guest's words. */
  links(): {
    name: string;
    stats: {
      framesIn: number;
      framesOut: number;
      bytesIn: number;
      bytesOut: number;
      drops: Record<string, number>;
    };
  }[];
  stack(): StackCounters;
  published(): ForwardInfo[];
  dns?(): DnsCounters | undefined;
  proxy?(): ProxyCounters | undefined;
  sshAgent?(): AgentRelayCounters | undefined;
}

export interface ProxyCounters {
  explicit: HttpProxyCounters;
  transparent: TransparentCounters;
  socks5?: SocksCounters;
}

export interface DaemonMetrics {
  readonly registry: Registry;
  observeDnsQuery(entry: Pick<QueryLogEntry, "layer" | "rcode" | "latencyMs" | "cached" | "transport">): void;
  text(): Promise<string>;
  readonly contentType: string;
}

type Labels = Record<string, string>;

/**
 * A counter whose value is kept elsewhere (the stack's own monotonic counts): set at scrape
 * time. prom-client counters only go up, so each scrape resets and adds the current totals;
 * the exposition still says `counter`, which is what rate() needs.
 */
function mirroredCounter(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => [Labels, number][],
): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) if (value > 0) this.inc(labels, value);
    },
  });
}

function gauge(
  registry: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => [Labels, number][],
): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.set(labels, value);
    },
  });
}

export function createDaemonMetrics(source: MetricsSource): DaemonMetrics {
  const registry = new Registry();
  // process_* (CPU, memory, fds) and nodejs_* (event-loop lag, heap, GC); the lag monitor's
  // histogram is sampled by perf_hooks, not by a timer of ours.
  collectDefaultMetrics({ register: registry });
  // One read of the stack's counters per scrape, shared by every family below.
  let scrape: StackCounters | undefined;
  const stack = () => {
    scrape ??= source.stack();
    return scrape;
  };
  const perLink = (pick: (s: ReturnType<MetricsSource["links"]>[number]["stats"]) => number) => () =>
    source.links().map((l): [Labels, number] => [{ link: l.name }, pick(l.stats)]);

  mirroredCounter(
    registry,
    "desktopd_link_frames_received_total",
    "Frames received from guests, per link.",
    ["link"],
    perLink((s) => s.framesIn),
  );
  mirroredCounter(
    registry,
    "desktopd_link_frames_sent_total",
    "Frames sent to guests, per link.",
    ["link"],
    perLink((s) => s.framesOut),
  );
  mirroredCounter(
    registry,
    "desktopd_link_received_bytes_total",
    "Bytes received from guests, per link.",
    ["link"],
    perLink((s) => s.bytesIn),
  );
  mirroredCounter(
    registry,
    "desktopd_link_sent_bytes_total",
    "Bytes sent to guests, per link.",
    ["link"],
    perLink((s) => s.bytesOut),
  );
  mirroredCounter(
    registry,
    "desktopd_link_drops_total",
    "Frames a link dropped, by reason.",
    ["link", "reason"],
    () =>
      source
        .links()
        .flatMap((l) =>
          Object.entries(l.stats.drops).map(([reason, n]): [Labels, number] => [{ link: l.name, reason }, n]),
        ),
  );
  mirroredCounter(
    registry,
    "desktopd_stack_frames_total",
    "Frames through the stack, by direction.",
    ["direction"],
    () => [
      [{ direction: "in" }, stack().frames.in],
      [{ direction: "out" }, stack().frames.out],
    ],
  );
  mirroredCounter(
    registry,
    "desktopd_stack_bytes_total",
    "Bytes through the stack, by direction.",
    ["direction"],
    () => [
      [{ direction: "in" }, stack().frames.bytesIn],
      [{ direction: "out" }, stack().frames.bytesOut],
    ],
  );
  mirroredCounter(
    registry,
    "desktopd_stack_drops_total",
    "What the stack did not use, by reason.",
    ["reason"],
    () => Object.entries(stack().drops).map(([reason, n]): [Labels, number] => [{ reason }, n]),
  );
  gauge(registry, "desktopd_flows_open", "Flows open now, by protocol.", ["protocol"], () => [
    [{ protocol: "tcp" }, stack().tcp.open],
    [{ protocol: "udp" }, stack().udp.open],
  ]);
  mirroredCounter(registry, "desktopd_flows_opened_total", "Flows opened, by protocol.", ["protocol"], () => [
    [{ protocol: "tcp" }, stack().tcp.opened],
    [{ protocol: "udp" }, stack().udp.opened],
  ]);
  gauge(registry, "desktopd_tcp_pending_connects", "Guest SYNs waiting for their host connect.", [], () => [
    [{}, stack().tcp.pendingConnects],
  ]);
  gauge(registry, "desktopd_tcp_time_wait", "TCP connections waiting in TIME-WAIT.", [], () => [
    [{}, stack().tcp.timeWait],
  ]);
  mirroredCounter(
    registry,
    "desktopd_tcp_retransmissions_total",
    "TCP retransmissions towards guests, by kind.",
    ["kind"],
    () => [
      [{ kind: "timeout" }, stack().tcp.timeouts],
      [{ kind: "fast" }, stack().tcp.fastRetransmits],
      [{ kind: "segment" }, stack().tcp.segmentsRetransmitted],
    ],
  );
  mirroredCounter(registry, "desktopd_tcp_closed_total", "TCP connections ended, by how.", ["how"], () => [
    [{ how: "refused" }, stack().tcp.refused],
    [{ how: "reset" }, stack().tcp.reset],
    [{ how: "timeout" }, stack().tcp.timedOut],
    [{ how: "any" }, stack().tcp.closed],
  ]);
  mirroredCounter(
    registry,
    "desktopd_tcp_internal_errors_total",
    "TCP flows closed because handling them threw (bugs).",
    [],
    () => [[{}, stack().tcp.internalErrors]],
  );
  mirroredCounter(
    registry,
    "desktopd_udp_datagrams_total",
    "UDP datagrams NATed, by direction.",
    ["direction"],
    () => [
      [{ direction: "from_guest" }, stack().udp.datagramsIn],
      [{ direction: "to_guest" }, stack().udp.datagramsOut],
    ],
  );
  gauge(
    registry,
    "desktopd_tcp_buffer_bytes",
    "TCP buffer memory granted to flows, and the budget.",
    ["kind"],
    () => [
      [{ kind: "used" }, stack().memory.usedBytes],
      [{ kind: "budget" }, stack().memory.totalBytes],
    ],
  );
  mirroredCounter(
    registry,
    "desktopd_egress_denied_total",
    "Guest flows the egress policy refused, by rule id or default.",
    ["rule"],
    () => Object.entries(stack().egress.deniedBy).map(([rule, n]): [Labels, number] => [{ rule }, n]),
  );
  const perForward = (pick: (f: ForwardInfo) => number) => () =>
    source.published().map((f): [Labels, number] => [{ id: f.id }, pick(f)]);
  gauge(
    registry,
    "desktopd_published_connections_open",
    "Connections open through a published port.",
    ["id"],
    perForward((f) => f.stats.open),
  );
  mirroredCounter(
    registry,
    "desktopd_published_connections_total",
    "Connections accepted by a published port.",
    ["id"],
    perForward((f) => f.stats.accepted),
  );
  mirroredCounter(
    registry,
    "desktopd_published_dial_failures_total",
    "Dials into the guest that failed, per published port.",
    ["id"],
    perForward((f) => f.stats.dialFailures),
  );
  mirroredCounter(
    registry,
    "desktopd_published_received_bytes_total",
    "Bytes from host clients to the guest, per published port.",
    ["id"],
    perForward((f) => f.stats.bytesIn),
  );
  mirroredCounter(
    registry,
    "desktopd_published_sent_bytes_total",
    "Bytes from the guest to host clients, per published port.",
    ["id"],
    perForward((f) => f.stats.bytesOut),
  );
  mirroredCounter(
    registry,
    "desktopd_dns_cache_lookups_total",
    "DNS cache lookups, by result.",
    ["result"],
    () => {
      const cache = source.dns?.()?.cache;
      return cache
        ? [
            [{ result: "hit" }, cache.hits],
            [{ result: "miss" }, cache.misses],
          ]
        : [];
    },
  );

  const proxied = (read: (p: ProxyCounters) => [Labels, number][]) => () => {
    const p = source.proxy?.();
    return p ? read(p) : [];
  };
  mirroredCounter(
    registry,
    "desktopd_proxy_requests_total",
    "Requests to the explicit proxy, by kind (plain HTTP, CONNECT).",
    ["kind"],
    proxied((p) => [
      [{ kind: "http" }, p.explicit.requests],
      [{ kind: "connect" }, p.explicit.tunnels],
    ]),
  );
  mirroredCounter(
    registry,
    "desktopd_proxy_upstream_kept_total",
    "Plain requests sent to an upstream proxy on a kept-alive connection (reused), and those sent again on a new one after a kept connection was lost (retried).",
    ["outcome"],
    proxied((p) => [
      [{ outcome: "reused" }, p.explicit.upstreamReused],
      [{ outcome: "retried" }, p.explicit.upstreamRetried],
    ]),
  );
  mirroredCounter(
    registry,
    "desktopd_proxy_errors_total",
    "Answers the explicit proxy gave itself, by HTTP status (400, 403, 431, 502, 504...).",
    ["status"],
    proxied((p) => Object.entries(p.explicit.errors).map(([status, n]): [Labels, number] => [{ status }, n])),
  );
  mirroredCounter(
    registry,
    "desktopd_proxy_transparent_total",
    "Guest connections intercepted for the upstream, by how they were routed.",
    ["route"],
    proxied((p) => [
      [{ route: "http-host" }, p.transparent.http],
      [{ route: "tls-sni" }, p.transparent.tlsByName],
      [{ route: "address" }, p.transparent.byAddress],
      [{ route: "failed" }, p.transparent.failed],
    ]),
  );
  mirroredCounter(
    registry,
    "desktopd_socks5_connections_total",
    "Clients of the SOCKS5 server, by outcome (connected, or why they were turned away).",
    ["outcome"],
    proxied((p) =>
      p.socks5
        ? [
            [{ outcome: "connected" }, p.socks5.connected],
            ...Object.entries(p.socks5.refused).map(([why, n]): [Labels, number] => [{ outcome: why }, n]),
          ]
        : [],
    ),
  );

  const agent = (read: (a: AgentRelayCounters) => [Labels, number][]) => () => {
    const a = source.sshAgent?.();
    return a ? read(a) : [];
  };
  mirroredCounter(
    registry,
    "desktopd_ssh_agent_requests_total",
    "Requests guests sent to the SSH agent relay, by outcome.",
    ["outcome"],
    agent((a) => [
      [
        { outcome: "relayed" },
        a.requests - a.agentUnavailable - Object.values(a.refused).reduce((x, y) => x + y, 0),
      ],
      [{ outcome: "agent-unavailable" }, a.agentUnavailable],
      ...Object.entries(a.refused).map(([request, n]): [Labels, number] => [
        { outcome: `refused-${request}` },
        n,
      ]),
    ]),
  );
  mirroredCounter(
    registry,
    "desktopd_ssh_agent_signatures_total",
    "Signatures the host agent was asked for on behalf of guests.",
    [],
    agent((a) => [[{}, a.signatures]]),
  );
  mirroredCounter(
    registry,
    "desktopd_ssh_agent_malformed_total",
    "Guest connections to the SSH agent relay closed for malformed or oversized messages.",
    [],
    agent((a) => [[{}, a.malformed]]),
  );

  const queries = new Counter({
    name: "desktopd_dns_queries_total",
    help: "DNS queries answered, by the layer that answered, rcode and transport.",
    labelNames: ["layer", "rcode", "transport", "cached"],
    registers: [registry],
  });
  const latency = new Histogram({
    name: "desktopd_dns_query_duration_seconds",
    help: "Time to answer a DNS query, by layer.",
    labelNames: ["layer"],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });

  return {
    registry,
    contentType: registry.contentType,
    observeDnsQuery(e) {
      // Layer, rcode and transport come from fixed sets, never from the query's name.
      queries.inc({ layer: e.layer, rcode: e.rcode, transport: e.transport, cached: String(e.cached) });
      latency.observe({ layer: e.layer }, e.latencyMs / 1000);
    },
    async text() {
      scrape = undefined;
      try {
        return await registry.metrics();
      } finally {
        scrape = undefined;
      }
    },
  };
}
