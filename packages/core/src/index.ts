/**
 * @desktopd/core — what every desktopd package speaks, and nothing else: the `Logger` and `Clock`
 * they take, the per-flow policy types, the `FrameTransport` and `Dialer` interfaces, network
 * constants and the coded error base; and the few helpers two packages share (`KeyedBudget`,
 * `SlabPool`, `withLandingReads`). Implementation packages depend on this one, never on each
 * other; the app composes them.
 *
 * @example
 * ```ts
 * import { ManualClock, silentLogger, type FrameTransport } from "@desktopd/core";
 *
 * const clock = new ManualClock();
 * clock.setTimer(() => console.log("fired at", clock.now()), 1000);
 * clock.advance(1000); // fired at 1000
 * ```
 */
export {
  type Clock,
  cryptoRandom,
  ManualClock,
  type Now,
  type Random,
  SeededRandom,
  systemClock,
  type Timer,
  wallClock,
} from "./clock.js";
export type { Dialer, UdpChannel } from "./dialer.js";
export { codeOf, DesktopdError, errorFamily } from "./errors.js";
export { KeyedBudget } from "./keyed-budget.js";
export { canLandReads, withLandingReads, writeCopy } from "./landing-reads.js";
export { debugEnabled, type Logger, silentLogger } from "./logger.js";
export { DEFAULT_MTU, DEFAULT_SUBNET, MAX_MTU, MIN_MTU } from "./network.js";
export {
  type DatagramHandler,
  type DatagramReply,
  defaultDecision,
  type FlowInfo,
  type FlowPolicy,
  type StreamHandler,
  type TcpDecision,
  type UdpDecision,
} from "./policy.js";
export { SlabPool, type SlabPoolOptions, type SlabPoolStats } from "./slab-pool.js";
export {
  countDrop,
  type FrameMeta,
  type FrameReceiver,
  type FrameTransport,
  newTransportStats,
  type OffloadCapability,
  type TransportStats,
} from "./transport.js";
