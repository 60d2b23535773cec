import type { ResolvedNetwork } from "../config.js";

/** Subnet membership and the gateway's own addresses, which no guest may claim. */
export class Addressing {
  readonly own: ReadonlySet<number>;

  constructor(private readonly net: ResolvedNetwork) {
    this.own = new Set([net.gateway, net.hostAddress, ...net.dnsServers.filter((ip) => this.inSubnet(ip))]);
  }

  inSubnet(ip: number): boolean {
    return (ip & this.net.netmask) >>> 0 === this.net.network;
  }
}
