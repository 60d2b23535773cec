/**
 * @desktopd/stack — a userspace Ethernet/ARP/IPv4/ICMP/UDP/TCP stack with DHCP that plugs a
 * Linux guest's NIC in and turns every guest flow into an ordinary socket of this process,
 * so the host's routes, VPN and firewall apply to the guest as if the host made the call.
 *
 * @example
 * ```ts
 * import { createStack, openTap } from "@desktopd/stack";
 *
 * const stack = createStack({ subnet: "192.168.65.0/24" });
 * stack.attach(await openTap({ netns: "guest" }));   // eth0 inside netns "guest"
 * // In the guest: `udhcpc -i eth0`, then `curl http://192.168.65.254:8080/` reaches the host's 127.0.0.1:8080.
 * const conn = await stack.connect("192.168.65.3", 22); // a Duplex into the guest
 * ```
 */

// What every desktopd package speaks, re-exported so that this package alone is enough to use it.
export {
  type Clock,
  cryptoRandom,
  type DatagramHandler,
  type DatagramReply,
  type FlowInfo,
  type FlowPolicy,
  type Logger,
  MAX_MTU,
  ManualClock,
  MIN_MTU,
  type Now,
  type Random,
  SeededRandom,
  type StreamHandler,
  systemClock,
  type TcpDecision,
  type Timer,
  type UdpDecision,
} from "@desktopd/core";
export { type NetworkOptions, type StaticLease, subnetProblem } from "./config.js";
export type { FlowEntry, StackCounters } from "./counters.js";
export {
  type Egress,
  type EgressAction,
  type EgressOptions,
  type EgressQuery,
  type EgressRule,
  type EgressRuleInfo,
  type EgressVerdict,
  formatEgressRule,
  parseEgressRule,
} from "./egress.js";
export { ConfigError, DialError, StackError, TransportError, WireError } from "./errors.js";
export { DEFAULT_IPV6_PREFIX, type Ipv6Config, type Ipv6Counters, type Ipv6Options } from "./iface/ipv6.js";
export type { BufferBudgetOptions } from "./nat/budget.js";
export type { IcmpRelayOptions } from "./nat/icmp-relay.js";
export type { TcpCounters } from "./nat/tcp-flow.js";
export type { TcpLayerOptions, TcpOptions } from "./nat/tcp-table.js";
export type { GuestUdpSocket, UdpLayerOptions, UdpOptions } from "./nat/udp.js";
export {
  createStack,
  type DialOptions,
  type LeaseInfo,
  type Stack,
  type StackConfig,
  type StackOptions,
} from "./stack.js";
export * from "./switch/index.js";
export * from "./transport/index.js";
export { ipv4ToString, macToString, parseIpv4Address, parseMac } from "./wire/address.js";
