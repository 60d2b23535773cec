/**
 * ARP on the guest link: answers for the gateway's addresses, learns guests through the
 * neighbour table's source guard, and resolves guests for connections the stack dials.
 */
import type { Clock } from "@desktopd/core";
import type { ResolvedNetwork } from "../config.js";
import type { DropCounters } from "../counters.js";
import { BROADCAST_MAC } from "../wire/address.js";
import { ARP_REPLY, ARP_REQUEST, parseArp } from "../wire/arp.js";
import type { Addressing } from "./addressing.js";
import { arpFrame } from "./frames.js";
import type { Link } from "./link.js";
import type { NeighbourTable } from "./neighbours.js";

export class ArpResponder {
  readonly counters = { requests: 0, replies: 0 };

  constructor(
    private readonly net: ResolvedNetwork,
    private readonly addressing: Addressing,
    private readonly neighbours: NeighbourTable,
    private readonly link: Link,
    private readonly drops: DropCounters,
    private readonly clock: Clock,
  ) {}

  onArp(payload: Buffer): void {
    const p = parseArp(payload);
    // An ARP probe (sender 0.0.0.0) claims nothing; any other sender address must be the MAC's own.
    if (p.senderIp !== 0) {
      if (this.addressing.own.has(p.senderIp)) {
        this.drops.count("arp-claims-gateway");
        return;
      }
      if (!this.addressing.inSubnet(p.senderIp)) {
        this.drops.count("arp-not-in-subnet");
        return;
      }
      if (!this.neighbours.admit(p.senderIp, p.senderMac, this.clock.now())) {
        this.drops.count("arp-spoofed");
        return;
      }
    }
    if (p.op !== ARP_REQUEST) return;
    this.counters.requests++;
    if (p.targetIp !== this.net.gateway && p.targetIp !== this.net.hostAddress) return;
    this.counters.replies++;
    this.link.send(
      arpFrame(this.net.gatewayMac, p.senderMac, {
        op: ARP_REPLY,
        senderMac: this.net.gatewayMac,
        senderIp: p.targetIp,
        targetMac: p.senderMac,
        targetIp: p.senderIp,
      }),
    );
  }

  /** Waits until the guest's MAC for `ip` is known, asking by ARP every 100 ms; false on timeout. */
  async resolve(ip: number, timeoutMs: number, stopped: () => boolean): Promise<boolean> {
    const deadline = this.clock.now() + Math.min(timeoutMs, 3_000);
    while (!this.neighbours.lookup(ip)) {
      if (this.clock.now() >= deadline || stopped()) return false;
      this.link.send(
        arpFrame(this.net.gatewayMac, BROADCAST_MAC, {
          op: ARP_REQUEST,
          senderMac: this.net.gatewayMac,
          senderIp: this.net.gateway,
          targetMac: Buffer.alloc(6),
          targetIp: ip,
        }),
      );
      await new Promise<void>((r) => this.clock.setTimer(r, 100));
    }
    return true;
  }
}
