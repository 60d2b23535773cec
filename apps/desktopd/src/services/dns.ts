/**
 * The guests' DNS on the gateway. Made before the stack (its policy goes into it), bound once
 * the stack knows its addresses; records, forwarding and the upstream change live.
 */
import type { Dns } from "@desktopd/dns";
import type { LeaseInfo, Logger, StackConfig } from "@desktopd/stack";
import type { RunConfig } from "../config.js";
import { createGuestDns, type GuestDns } from "../dns.js";
import type { Service } from "./service.js";

export interface DnsService extends Service {
  readonly guestDns: GuestDns;
  /** Starts answering on the stack's gateway; the server, for the control API. */
  bind(net: StackConfig, leases: () => LeaseInfo[]): Dns;
  readonly server: Dns | undefined;
}

export function createDnsService(config: RunConfig, logger?: Logger): DnsService {
  const guestDns = createGuestDns(config, logger);
  let server: Dns | undefined;
  return {
    name: "dns",
    guestDns,
    get server() {
      return server;
    },
    bind(net, leases) {
      server = guestDns.bind(net, leases);
      return server;
    },
    liveKeys: ["dnsRecord", "dnsForward", "dnsUpstream", "dnsHostMode"],
    async reload(next) {
      guestDns.reconfigure(next);
      return [];
    },
    status: () => (server ? { dns: server.handler.counters() } : {}),
    async close() {
      guestDns.close();
    },
  };
}
