/**
 * desktopd: host-style networking for Linux VMs and network namespaces. A guest gets a NIC whose
 * frames go to the userspace stack of `@desktopd/stack`, which NATs its flows onto ordinary
 * host sockets. This module is the programmatic face of `desktopd run`.
 *
 * @example
 * ```ts
 * import { runDaemon } from "desktopd";
 * // As root, after `ip netns add guest`:
 * const daemon = await runDaemon({ netns: "guest", configure: true });
 * console.log(daemon.readyLine); // desktopd ready netns=guest ifname=eth0 mac=... address=192.168.65.3/24 ...
 * // `ip netns exec guest curl http://192.168.65.254:8000/` now reaches the host's 127.0.0.1:8000.
 * await daemon.close();
 * ```
 */
export {
  DEFAULT_DEMO_NETNS,
  DEFAULT_IFNAME,
  DEFAULT_MTU,
  DEFAULT_SUBNET,
  LOG_LEVELS,
  type LogLevel,
  MAX_MTU,
  MIN_MTU,
  parseRunOptions,
  type RunConfig,
  type RunOptionsInput,
} from "./config.js";
export {
  type DaemonHandle,
  type DaemonOptions,
  type Logger,
  runDaemon,
  type TapTransport,
} from "./daemon.js";
export {
  DesktopdError,
  GuestConfigError,
  InvalidOptionError,
  LinkLostError,
  NetnsExistsError,
  NetnsNotFoundError,
  NotRootError,
  TunUnavailableError,
} from "./errors.js";
export type { ProcessStats } from "./process-stats.js";
export { formatReadyLine, parseReadyLine, READY_PREFIX, type ReadyInfo } from "./ready.js";
export { renderResolvConf } from "./resolv-conf.js";
