/**
 * @desktopd/proxy — the host's proxy settings for guests: upstream URLs (`http`, `https`,
 * `socks5`, `socks5h`), NO_PROXY rules, the environment as curl and Go read it, sandboxed PAC
 * files, and a settings holder that announces changes; an explicit HTTP proxy and a transparent
 * one (Host and SNI) over any Duplex, and a SOCKS5 server with the embedder's dialer.
 *
 * @example
 * ```ts
 * import net from "node:net";
 * import { configFromEnv, createHttpProxy, ProxySettings } from "@desktopd/proxy";
 *
 * const settings = new ProxySettings(configFromEnv());
 * const proxy = createHttpProxy({ settings });
 * net.createServer((socket) => proxy.handle(socket)).listen(3128, "127.0.0.1");
 * ```
 */
export { ProxyConfigError, ProxyError } from "./errors.js";
export {
  createHttpProxy,
  type HttpProxy,
  type HttpProxyCounters,
  type HttpProxyOptions,
  MAX_HEADER_BYTES,
} from "./http-proxy.js";
export { formatNoProxyRule, type NoProxy, type NoProxyRule, parseNoProxy } from "./no-proxy.js";
export {
  compilePac,
  type Hop,
  loadPac,
  MAX_PAC_BYTES,
  type PacOptions,
  type PacScript,
  parsePacAnswer,
} from "./pac.js";
export {
  configFromEnv,
  describeConfig,
  type ProxyConfig,
  ProxySettings,
  type ProxySettingsEvents,
  upstreamFor,
} from "./settings.js";
export { type ClientHelloResult, MAX_CLIENT_HELLO, readClientHello } from "./sni.js";
export {
  createSocksServer,
  type SocksCounters,
  type SocksDial,
  SocksRefusal,
  type SocksRefusalReason,
  type SocksServer,
  type SocksServerOptions,
} from "./socks-server.js";
export {
  parseScutilProxy,
  parseWindowsInternetSettings,
  readSystemProxy,
  type SystemProxy,
} from "./system.js";
export {
  createTransparentProxy,
  type TransparentCounters,
  type TransparentProxy,
  type TransparentProxyOptions,
} from "./transparent.js";
export {
  type ConnectionContext,
  type DirectConnect,
  firstReachable,
  openTunnel,
  UpstreamError,
} from "./tunnel.js";
export { formatUpstream, parseUpstream, type Upstream, type UpstreamProtocol } from "./upstream.js";
export type { UpstreamPoolOptions } from "./upstream-pool.js";
