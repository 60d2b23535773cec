/**
 * @desktopd/proxy in the daemon: the explicit proxy on the gateway's port 3128
 * (`http.docker.internal`), transparent interception of guest flows to ports 80/443 while an
 * upstream is set, and the optional SOCKS5 door from host loopback into guest addresses. Made
 * before the stack (its policy goes into it), bound once the stack and DNS exist. Settings change
 * live: config reload, `desktopd proxy set|unset`; connections in flight keep their upstream.
 *
 * Direct connections the proxy opens for guests are host sockets like NATed flows, so they pass
 * the stack's egress policy and map the host address to the host's loopback the same way.
 */
import { isIP, SocketAddress, connect as tcpConnect } from "node:net";
import type { Dns } from "@desktopd/dns";
import {
  createHttpProxy,
  createSocksServer,
  createTransparentProxy,
  type DirectConnect,
  describeConfig,
  formatNoProxyRule,
  type HttpProxy,
  loadPac,
  ProxySettings,
  parseNoProxy,
  readSystemProxy,
  type SocksDial,
  SocksRefusal,
  type SocksServer,
  type SystemProxy,
  type TransparentProxy,
  UpstreamError,
} from "@desktopd/proxy";
import { DialError, type FlowPolicy, type Logger, type Stack } from "@desktopd/stack";
import { parseListenAddress, type RunConfig } from "../config.js";
import type { EventBus } from "../control/events.js";
import type { ProxyCounters } from "../metrics.js";
import { type NetAddresses, netAddresses } from "../net-addresses.js";
import {
  describeProxy,
  guestProxyEnv,
  PROXY_NAMES,
  PROXY_PORT,
  type ProxyKeys,
  type ProxyOverride,
  type ProxySource,
  resolveProxyConfig,
} from "../proxy-settings.js";
import type { Service } from "./service.js";

export interface ProxyService extends Service {
  /** The stack's policy: the proxy's flows first, then `next`. */
  policy(next?: FlowPolicy): FlowPolicy;
  /** Starts serving with the stack (gateway, egress, dials into guests) and the guests' DNS. */
  bind(stack: Stack, dns: Dns): Promise<void>;
  /** GET /v1/proxy. */
  info(): Record<string, unknown>;
  /**
   * Replaces the settings from the API until `unset`; rejects with ProxyConfigError on a bad URL
   * or a PAC file that cannot be had.
   */
  set(override: ProxyOverride): Promise<Record<string, unknown>>;
  /** Back to the config's (or the environment's) settings. */
  unset(): Promise<Record<string, unknown>>;
  /** GET /v1/proxy/env: the variables pointing a guest at the proxy. */
  env(): Record<string, string>;
  /** The proxies' counters, once bound (metrics). */
  counters(): ProxyCounters | undefined;
}

const SERVICE = "proxy";

export function createProxyService(
  config: RunConfig,
  events: EventBus,
  logger?: Logger,
  env: NodeJS.ProcessEnv = process.env,
): ProxyService {
  const log = logger?.child({ component: "proxy" });
  let keys: ProxyKeys = {
    upstreamProxy: config.upstreamProxy,
    noProxy: config.noProxy,
    proxyPac: config.proxyPac,
  };
  let transparentPorts = new Set(config.transparentProxyPorts);
  let allowList = config.proxyAllow ? parseNoProxy(config.proxyAllow, "proxyAllow") : undefined;
  let connectPorts = config.proxyConnectPorts;
  /** macOS's or Windows' own settings, read at start and every 30 s (undefined on Linux). */
  let system: SystemProxy | undefined;
  let systemTimer: NodeJS.Timeout | undefined;
  const initial = resolveProxyConfig(keys, undefined, env, log);
  let source: ProxySource = initial.source;
  // Names and addresses of desktopd's own network: no upstream could reach them.
  const settings = new ProxySettings(initial.config, {
    alwaysDirect: parseNoProxy([
      "localhost",
      "127.0.0.0/8",
      "::1",
      "docker.internal",
      "desktopd.internal",
      "containers.internal",
      config.subnet,
    ]),
  });
  let bound:
    | {
        stack: Stack;
        /** The gateway's and the host's addresses, both families. */
        gateways: ReadonlySet<string>;
        hosts: ReadonlySet<string>;
        explicit: HttpProxy;
        transparent: TransparentProxy;
        socks?: SocksServer;
        socksAddress?: string;
        subnet: ReturnType<typeof parseNoProxy>;
      }
    | undefined;

  /** Validates and loads everything first: a bad URL or PAC file leaves the settings as they were. */
  const apply = async (next: ProxyOverride | undefined) => {
    const resolved = resolveProxyConfig(keys, next, env, log, system);
    const pacLocation = next ? next.pac : (keys.proxyPac ?? resolved.pac);
    const pac = pacLocation
      ? await loadPac(pacLocation, {
          onError: (error) =>
            log?.warn({ pac: pacLocation, err: error.message }, "PAC script failed: DIRECT"),
        })
      : undefined;
    const before = settings.current.pac;
    source = resolved.source;
    settings.set({ ...resolved.config, ...(pac ? { pac } : {}) });
    before?.close();
  };

  const onChanged = () => {
    const now = describeConfig(settings.current);
    log?.info({ upstream: now, source }, "proxy settings changed");
    events.emit("proxy-changed", { upstream: now, source });
  };

  settings.on("changed", onChanged);

  return {
    name: SERVICE,
    liveKeys: [
      "upstreamProxy",
      "noProxy",
      "proxyPac",
      "transparentProxyPorts",
      "proxyAllow",
      "proxyConnectPorts",
    ],

    policy(next) {
      return {
        tcp: (flow) => {
          const b = bound;
          if (b) {
            const context = { client: { ip: flow.guestIp, port: flow.guestPort } };
            if (b.gateways.has(flow.dstIp) && flow.dstPort === PROXY_PORT) {
              return {
                action: "handle",
                service: SERVICE,
                handler: (stream) => b.explicit.handle(stream, context),
              };
            }
            if (
              transparentPorts.has(flow.dstPort) &&
              settings.hasUpstream &&
              !b.gateways.has(flow.dstIp) &&
              !b.hosts.has(flow.dstIp) &&
              !b.subnet.matches(flow.dstIp, flow.dstPort)
            ) {
              const original = { ip: flow.dstIp, port: flow.dstPort };
              return {
                action: "handle",
                service: SERVICE,
                handler: (stream) => b.transparent.handle(stream, { ...context, original }),
              };
            }
          }
          return next?.tcp?.(flow);
        },
        udp: (flow) => next?.udp?.(flow),
      };
    },

    async bind(stack, dns) {
      const net = stack.config;
      const addresses = netAddresses(net);
      for (const name of PROXY_NAMES) {
        dns.registry.register(name, net.gateway);
        if (net.ipv6) dns.registry.register(name, net.ipv6.gateway);
      }
      system = await readSystemProxy();
      if (keys.proxyPac || system) await apply(undefined);
      if (system) {
        // The user changes network or joins a VPN: the system's settings change, ours follow.
        systemTimer = setInterval(() => {
          void readSystemProxy().then(async (now) => {
            const same = (a?: SystemProxy) => a && `${describeConfig(a.config)} ${a.pac ?? ""}`;
            if (!now || same(now) === same(system)) return;
            system = now;
            if (source === "system" || source === "environment") await apply(undefined).catch(() => {});
          });
        }, 30_000);
        systemTimer.unref();
      }

      const resolveA = async (name: string): Promise<string | undefined> => {
        const answered = await dns.resolver.resolve({ name, type: "A", class: "IN" });
        for (const a of answered.answers) if (a.type === "A") return a.data;
        return undefined;
      };
      // What the guest would reach by itself: its DNS's answer, the host address as the host's
      // loopback, and only what the egress policy lets through.
      const direct: DirectConnect = async (host, port, context) => {
        const ip = isIP(host) ? canonicalIp(host) : await resolveA(host);
        if (ip === undefined) throw new UpstreamError(502, `${host}: no such name (guest DNS)`);
        if (addresses.gateways.has(ip)) throw new UpstreamError(403, `${host}:${port} is desktopd's gateway`);
        const verdict = stack.egress.checkConnection({
          protocol: "tcp",
          guestIp: context.client?.ip ?? net.gateway,
          guestPort: context.client?.port ?? 0,
          dstIp: ip,
          dstPort: port,
          ...(isIP(host) ? {} : { names: [host] }),
        });
        if (!verdict.allowed) {
          throw new UpstreamError(403, `${host}:${port} is refused by desktopd's egress policy`);
        }
        const host6 = net.ipv6?.hostAddress;
        return tcpConnect({ host: ip === net.hostAddress ? "127.0.0.1" : ip === host6 ? "::1" : ip, port });
      };
      const explicit = createHttpProxy({
        settings,
        direct,
        // Read at each request: the allow-list and CONNECT ports change on reload.
        allow: (host, port) => allowList?.matches(host, port) ?? true,
        connectPorts: () => connectPorts,
        ...(log ? { logger: log } : {}),
      });
      const transparent = createTransparentProxy({
        settings,
        http: explicit,
        direct,
        ...(log ? { logger: log } : {}),
      });
      const subnet = parseNoProxy(addresses.subnets);
      bound = { stack, gateways: addresses.gateways, hosts: addresses.hosts, explicit, transparent, subnet };
      if (config.socks5) {
        const at = parseListenAddress(config.socks5)!;
        const dial = socksDial(stack, addresses, subnet, resolveA);
        const [username, ...password] = config.socks5Auth?.split(":") ?? [];
        const socks = createSocksServer({
          dial,
          ...(config.socks5Auth ? { auth: { username: username!, password: password.join(":") } } : {}),
          ...(log ? { logger: log } : {}),
        });
        const listening = await socks.listen(at.host, at.port);
        bound.socks = socks;
        bound.socksAddress = `${listening.host.includes(":") ? `[${listening.host}]` : listening.host}:${listening.port}`;
        log?.info({ socks5: bound.socksAddress, auth: config.socks5Auth !== undefined }, "socks5 serving");
      }
      log?.info(
        {
          proxy: `${net.gateway}:${PROXY_PORT}`,
          upstream: describeConfig(settings.current),
          source,
          transparent: [...transparentPorts].join(",") || "off",
        },
        "proxy serving",
      );
    },

    async reload(next, changed) {
      if (changed.some((k) => k === "upstreamProxy" || k === "noProxy" || k === "proxyPac")) {
        const before = keys;
        keys = { upstreamProxy: next.upstreamProxy, noProxy: next.noProxy, proxyPac: next.proxyPac };
        // A changed config replaces settings made through the API; if it cannot be applied, nothing changes.
        await apply(undefined).catch((error: unknown) => {
          keys = before;
          throw error;
        });
      }
      if (changed.includes("transparentProxyPorts")) transparentPorts = new Set(next.transparentProxyPorts);
      if (changed.includes("proxyAllow")) {
        allowList = next.proxyAllow ? parseNoProxy(next.proxyAllow, "proxyAllow") : undefined;
      }
      if (changed.includes("proxyConnectPorts")) connectPorts = next.proxyConnectPorts;
      return [];
    },

    info() {
      return {
        // The IPv4 gateway (first); the IPv6 one serves it too.
        listen: bound ? `${[...bound.gateways][0]}:${PROXY_PORT}` : null,
        names: [...PROXY_NAMES],
        ...describeProxy(settings.current, source),
        transparentPorts: [...transparentPorts],
        allow: allowList ? allowList.rules.map(formatNoProxyRule) : null,
        connectPorts: connectPorts ?? null,
        transparentActive: settings.hasUpstream && transparentPorts.size > 0,
        socks5: bound?.socksAddress ?? null,
        counters: this.counters() ?? null,
      };
    },

    async set(next) {
      await apply(next);
      return this.info();
    },

    async unset() {
      await apply(undefined);
      return this.info();
    },

    counters() {
      const b = bound;
      if (!b) return undefined;
      return {
        explicit: b.explicit.counters(),
        transparent: b.transparent.counters(),
        ...(b.socks ? { socks5: b.socks.counters() } : {}),
      };
    },

    env() {
      const net = bound?.stack.config;
      return guestProxyEnv(settings.current, net?.subnet ?? config.subnet, net?.ipv6?.prefix);
    },

    status() {
      return { proxy: this.info() };
    },

    async close() {
      clearInterval(systemTimer);
      settings.removeAllListeners();
      settings.current.pac?.close();
      const b = bound;
      bound = undefined;
      b?.transparent.close();
      b?.explicit.close();
      await b?.socks?.close();
    },
  };
}

/** The SOCKS5 door: guest addresses only (and guests' names), dialled through the stack. */
function socksDial(
  stack: Stack,
  addresses: NetAddresses,
  subnet: ReturnType<typeof parseNoProxy>,
  resolveA: (name: string) => Promise<string | undefined>,
): SocksDial {
  return async (host, port, kind) => {
    const ip = kind === "domain" ? await resolveA(host) : canonicalIp(host);
    if (ip === undefined) throw new SocksRefusal("unreachable", `${host}: no such name`);
    if (!subnet.matches(ip, port) || addresses.gateways.has(ip) || addresses.hosts.has(ip)) {
      throw new SocksRefusal("not-allowed", `${host} is not a guest address`);
    }
    try {
      return await stack.connect(ip, port, { service: "socks" });
    } catch (error) {
      if (!DialError.isInstance(error)) throw error;
      throw new SocksRefusal(
        error.reason === "refused" || error.reason === "reset"
          ? "refused"
          : error.reason === "timeout"
            ? "timeout"
            : "unreachable",
        error.message,
      );
    }
  };
}

/** An address literal in the one spelling flows use (RFC 5952 for IPv6). */
function canonicalIp(ip: string): string {
  return isIP(ip) === 6 ? new SocketAddress({ address: ip, family: "ipv6" }).address : ip;
}
