/** ICMP on the gateway: echo for the gateway and the host address, others relayed; anything else counted. */
import type { ResolvedNetwork } from "../config.js";
import type { DropCounters } from "../counters.js";
import type { IcmpEchoRelay } from "../nat/icmp-relay.js";
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, parseIcmpv4 } from "../wire/icmpv4.js";
import type { IpAddr } from "../wire/ip-addr.js";
import type { Ipv4Packet } from "../wire/ipv4.js";
import { type Ipv4Ids, icmpFrame } from "./frames.js";
import type { Link } from "./link.js";
import type { NeighbourTable } from "./neighbours.js";

export class IcmpEcho {
  readonly counters = { echoReplies: 0 };

  constructor(
    private readonly net: ResolvedNetwork,
    private readonly neighbours: NeighbourTable,
    private readonly link: Link,
    private readonly drops: DropCounters,
    private readonly verify: boolean,
    private readonly ids: Ipv4Ids,
    private readonly relay?: IcmpEchoRelay,
  ) {}

  onPacket(ip: Ipv4Packet): void {
    const icmp = parseIcmpv4(ip.payload, { verifyChecksum: this.verify });
    if (icmp.type !== ICMP_ECHO_REQUEST) {
      this.drops.count(`icmp-type-${icmp.type}`);
      return;
    }
    if (ip.dst !== this.net.gateway && ip.dst !== this.net.hostAddress) {
      // Beyond the gateway: through the host's echo socket, when desktopd may open one.
      if (this.relay) this.relay.relay(ip.src, ip.dst, icmp.rest >>> 16, icmp.rest & 0xffff, icmp.payload);
      else this.drops.count("icmp-echo-not-relayed");
      return;
    }
    const dstMac = this.neighbours.lookup(ip.src);
    if (!dstMac) return;
    this.counters.echoReplies++;
    this.link.send(
      icmpFrame(
        { srcMac: this.net.gatewayMac, dstMac, srcIp: ip.dst, dstIp: ip.src, ids: this.ids },
        { type: ICMP_ECHO_REPLY, code: 0, rest: icmp.rest, payload: icmp.payload },
      ),
    );
  }

  /** A relayed echo reply from `from` back to the guest, with its own identifier and sequence. */
  readonly deliverRelayed = (guest: IpAddr, from: IpAddr, id: number, seq: number, payload: Buffer): void => {
    const dstMac = this.neighbours.lookup(guest as number);
    if (!dstMac) return;
    this.link.send(
      icmpFrame(
        { srcMac: this.net.gatewayMac, dstMac, srcIp: from as number, dstIp: guest as number, ids: this.ids },
        { type: ICMP_ECHO_REPLY, code: 0, rest: ((id << 16) | seq) >>> 0, payload },
      ),
    );
  };
}
