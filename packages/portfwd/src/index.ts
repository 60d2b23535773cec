/**
 * @desktopd/portfwd — publishes guest ports on the host with Docker's `-p` syntax, TCP and UDP,
 * added and removed at runtime, with bind errors that name the address, the port and the
 * process holding it. Targets are reached through a `Dialer`: `@desktopd/stack`'s `Stack`
 * (connections into the guest, from the stack's host address) or plain host sockets.
 *
 * @example
 * ```ts
 * import { createForwarder, createSocketDialer } from "@desktopd/portfwd";
 *
 * const fwd = createForwarder({ dialer: createSocketDialer(), target: "127.0.0.1" });
 * const [info] = await fwd.add("8080:80");        // 127.0.0.1:8080 → 127.0.0.1:80
 * fwd.on("connection", ({ id, remote }) => console.log(id, "from", remote));
 * console.log(fwd.list());                        // live stats: open connections, bytes each way
 * await fwd.remove(info.id, { closeConnections: true });
 * ```
 */

export type { Dialer, Logger, UdpChannel } from "@desktopd/core";
export {
  AUTO_LABEL,
  type AutoForwardEvent,
  type AutoForwarder,
  type AutoForwarderCounters,
  type AutoForwarderOptions,
  type AutoForwardInfo,
  createAutoForwarder,
} from "./auto/auto-forwarder.js";
export {
  type Listener,
  type ParsedReport,
  parseReport,
  parseTable,
  REPORT_SCRIPT,
  type Table,
} from "./auto/proc-net.js";
export {
  type AutoDecision,
  type AutoForwardRule,
  type CompiledRule,
  compileAutoForwardRule,
  DEFAULT_AUTO_HOST_IP,
  decideAutoForward,
  formatAutoForwardRule,
  parseAutoForwardRule,
} from "./auto/rules.js";
export { createSocketDialer, type SocketDialerOptions } from "./dialer.js";
export {
  AddressNotAvailableError,
  AutoForwardRuleError,
  ForwardConflictError,
  ForwarderClosedError,
  ForwardNotFoundError,
  PortfwdError,
  PortfwdOptionError,
  PortInUseError,
  PrivilegedPortError,
  SpecError,
  TargetUnavailableError,
} from "./errors.js";
export type { ForwarderEvents, ForwardInfoBase, ForwardStats } from "./forward.js";
export {
  type AddOptions,
  createForwarder,
  type Forwarder,
  type ForwarderOptions,
  type ForwardInfo,
  type RemoveOptions,
  type TargetAddress,
} from "./forwarder.js";
export { findPortHolder, type PortHolder } from "./port-holder.js";
export {
  DEFAULT_HOST_IP,
  type ParseSpecOptions,
  type PortMapping,
  type Protocol,
  type PublishSpec,
  parsePublishSpec,
  parsePublishSpecs,
} from "./spec.js";
