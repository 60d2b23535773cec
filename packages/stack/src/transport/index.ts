/**
 * Links to a guest NIC (`FrameTransport`) and decorators that wrap any of them.
 *
 * @example
 * ```ts
 * const tap = withPcap(await openTap({ netns: "guest", mtu: 1500 }), "/tmp/guest.pcap");
 * tap.start({ onFrame: (frame) => stack.receive(frame) });
 * ```
 */

export { type FaultCounters, type FaultOptions, type FaultTransport, withFaults } from "./fault.js";
export { type PcapOptions, type PcapStats, type PcapTransport, withPcap } from "./pcap.js";
export { openTap, type TapOptions, type TapTransport } from "./tap.js";
export {
  countDrop,
  type FrameMeta,
  type FrameReceiver,
  type FrameTransport,
  newTransportStats,
  type OffloadCapability,
  type TransportStats,
} from "./types.js";
