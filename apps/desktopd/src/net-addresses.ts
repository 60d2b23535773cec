import type { StackConfig } from "@desktopd/stack";

/**
 * The network's fixed addresses in both families, as flows name them (IPv6 in RFC 5952 text):
 * services on the gateway answer on its IPv4 and IPv6 addresses alike.
 */
export interface NetAddresses {
  gateways: ReadonlySet<string>;
  hosts: ReadonlySet<string>;
  /** The guests' networks: the IPv4 subnet and, when IPv6 is on, its /64. */
  subnets: string[];
}

export function netAddresses(net: StackConfig): NetAddresses {
  return {
    gateways: new Set([net.gateway, ...(net.ipv6 ? [net.ipv6.gateway] : [])]),
    hosts: new Set([net.hostAddress, ...(net.ipv6 ? [net.ipv6.hostAddress] : [])]),
    subnets: [net.subnet, ...(net.ipv6 ? [net.ipv6.prefix] : [])],
  };
}
