/**
 * Links to a guest NIC (`FrameTransport`) and decorators that wrap any of them.
 *
 * @example
 * ```ts
 * const tap = withPcap(await openTap({ netns: "guest", mtu: 1500 }), "/tmp/guest.pcap");
 * stack.attach(tap); // the stack starts the link and owns it from now on
 * ```
 */

export {
  countDrop,
  type FrameMeta,
  type FrameReceiver,
  type FrameTransport,
  newTransportStats,
  type OffloadCapability,
  type TransportStats,
} from "@desktopd/core";
export { type FaultCounters, type FaultOptions, type FaultTransport, withFaults } from "./fault.js";
export { type PcapOptions, type PcapStats, type PcapTransport, withPcap } from "./pcap.js";
export {
  connectQemuStream,
  formatStreamAddress,
  listenQemuStream,
  parseStreamAddress,
  type QemuStreamConnector,
  type QemuStreamListener,
  type QemuStreamOptions,
  type StreamAddress,
} from "./qemu-stream.js";
export { stdioTransport } from "./stdio.js";
export { type StreamTransportOptions, streamTransport } from "./stream.js";
export { openTap, type TapOptions, type TapTransport } from "./tap.js";
export {
  listenUnixDatagram,
  RECOMMENDED_DGRAM_QLEN,
  type UnixDatagramListener,
  type UnixDatagramOptions,
  unixDatagramQueueLimit,
} from "./unix-datagram.js";
