/**
 * The network every guest joins: the stack (gateway, DHCP, NAT, egress policy) behind a virtual
 * switch, with an optional pcap of what passes between them.
 */
import {
  createStack,
  createSwitch,
  type FlowPolicy,
  type Logger,
  type Stack,
  type StackOptions,
  type VirtualSwitch,
  withPcap,
} from "@desktopd/stack";
import type { RunConfig } from "../config.js";
import type { EventBus } from "../control/events.js";
import { stackLimits } from "../stack-options.js";
import type { Service } from "./service.js";

export interface NetworkService extends Service {
  readonly stack: Stack;
  readonly switch: VirtualSwitch;
}

export interface NetworkDeps {
  policy: FlowPolicy;
  /** Names the gateway's DNS gave each guest for an address, for egress rules by name. */
  namesFor: (guestIp: string, dstIp: string) => readonly string[];
  stackOptions?: Omit<StackOptions, "subnet" | "mtu" | "logger"> | undefined;
  events: EventBus;
  logger?: Logger | undefined;
}

export function startNetwork(config: RunConfig, deps: NetworkDeps): NetworkService {
  const { logger, events } = deps;
  // It rejects a bad configuration before any socket or device exists.
  const stack = createStack({
    ...deps.stackOptions,
    ...stackLimits(config, deps.namesFor, deps.stackOptions),
    policy: deps.policy,
    // The guests' DNS answers on the gateway's IPv6 address too: the router advertises it.
    ...(config.ipv6
      ? { ipv6: { advertiseDns: true, ...(config.ipv6Prefix ? { prefix: config.ipv6Prefix } : {}) } }
      : { ipv6: false }),
    icmpRelay: { enabled: config.icmpRelay },
    subnet: config.subnet,
    mtu: config.mtu,
    logger,
  });
  const sw = createSwitch({
    offload: config.offload,
    onPortChange: (event, port, error) => {
      logger?.info(
        {
          link: port.name,
          macs: port.macs,
          err: error?.message,
          ...(event === "removed" ? { stats: port.stats } : {}),
        },
        `guest link ${event}`,
      );
      events.emit(`link-${event}`, {
        link: port.name,
        macs: port.macs,
        ...(error ? { error: error.message } : {}),
      });
    },
  });
  // pcap sees what passes between the guests and the stack (not guest-to-guest frames).
  stack.attach(config.pcap ? withPcap(sw, config.pcap) : sw);
  return {
    name: "network",
    stack,
    switch: sw,
    liveKeys: ["egress"],
    async reload(next) {
      stack.egress.replace(next.egress);
      logger?.info({ rules: next.egress.length }, "egress rules replaced");
      return [];
    },
    status: () => ({
      links: sw.ports(),
      leases: stack.leases(),
      counters: stack.counters(),
      ...(stack.config.ipv6 ? { ipv6: stack.config.ipv6 } : {}),
    }),
    close: () => stack.close(),
  };
}
