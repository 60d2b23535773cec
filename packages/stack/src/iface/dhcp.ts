/** The DHCP server on UDP port 67 of the link: replies go out, and an ACK pins its address to the MAC. */
import type { Clock } from "@desktopd/core";
import type { ResolvedNetwork } from "../config.js";
import type { DhcpServer } from "../dhcp/server.js";
import { BROADCAST_MAC } from "../wire/address.js";
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
  ) {}

  onMessage(payload: Buffer): void {
    const reply = this.server.handle(parseDhcp(payload));
    if (!reply) return;
    if (reply.bound) this.neighbours.pin(reply.bound.ip, reply.bound.mac, this.clock.now());
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
