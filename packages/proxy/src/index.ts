/**
 * @desktopd/proxy — the host's proxy settings for guests. Today: upstream proxy URLs
 * (`http`, `https`, `socks5`, `socks5h`, with credentials), NO_PROXY rules (names, suffixes,
 * addresses, CIDRs, ports), the environment read the way curl and Go read it, and a settings
 * holder that announces changes. The explicit and transparent proxies and the SOCKS5 door are
 * being built on top (see the README).
 *
 * @example
 * ```ts
 * import { configFromEnv, ProxySettings } from "@desktopd/proxy";
 *
 * const settings = new ProxySettings(configFromEnv());
 * settings.on("changed", (now) => console.log("proxy now", now));
 * settings.upstreamFor("example.com", 443, true); // HTTPS_PROXY's upstream, or undefined (direct)
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
