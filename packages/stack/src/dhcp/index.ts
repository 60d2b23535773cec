/**
 * DHCPv4 for the guest link: a lease engine that answers parsed client messages. It owns no
 * socket and no timer; the interface layer feeds it UDP payloads from port 68 and frames its
 * replies.
 *
 * @example
 * ```ts
 * const server = new DhcpServer({ serverIp, subnetMask, router: serverIp, dnsServers: [serverIp],
 *   poolStart, poolEnd, clock: systemClock });
 * const reply = server.handle(parseDhcp(udpPayload));
 * if (reply) sendUdp(reply.dstMac, reply.dstIp, DHCP_CLIENT_PORT, reply.message);
 * ```
 */
export {
  type DhcpReply,
  DhcpServer,
  type DhcpServerOptions,
  type DhcpServerStats,
  type Lease,
} from "./server.js";
