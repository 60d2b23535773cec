/** The DHCP server on UDP port 67 of the link: replies go out, and an ACK pins its address to the MAC. */
import type { Clock, Logger } from "@desktopd/core";
import type { ResolvedNetwork } from "../config.js";
import type { DhcpServer } from "../dhcp/server.js";
import { BROADCAST_MAC, ipv4ToString, macToString } from "../wire/address.js";
import { DHCP_CLIENT_PORT, DHCP_SERVER_PORT, parseDhcp } from "../wire/dhcp.js";
import { type Ipv4Ids, udpFrames } from "./frames.js";
import type { Link } from "./link.js";
import type { NeighbourTable } from "./neighbours.js";

export class DhcpPort {
  constructor(
    private readonly net: ResolvedNetwork,
    private readonly server: DhcpServer,
    private readonly neighbours: NeighbourTable,
    private readonly link: Link,
    private readonly clock: Clock,
    private readonly ids: Ipv4Ids,
    private readonly log: Logger,
  ) {}

  onMessage(payload: Buffer): void {
    const reply = this.server.handle(parseDhcp(payload));
    if (!reply) return;
    if (reply.bound) {
      const { ip, mac, renewed, hostname } = reply.bound;
      this.neighbours.pin(ip, mac, this.clock.now());
      // One line per new lease; renewals (every half lease) only at debug.
      const fields = { ip: ipv4ToString(ip), mac: macToString(mac), hostname };
      if (renewed) this.log.debug(fields, "dhcp lease renewed");
      else this.log.info(fields, "dhcp lease");
    }
    const route = {
      srcMac: this.net.gatewayMac,
      dstMac: reply.broadcast ? BROADCAST_MAC : reply.dstMac,
      srcIp: this.net.gateway,
      dstIp: reply.dstIp,
      ids: this.ids,
    };
    for (const f of udpFrames(route, DHCP_SERVER_PORT, DHCP_CLIENT_PORT, reply.message, this.net.mtu)) {
      this.link.send(f);
    }
  }
}
