import type { Now } from "@desktopd/core";
import { ConfigError, WireError } from "../errors.js";
import { BROADCAST_MAC, ipv4ToString, macToString, parseMac } from "../wire/address.js";
import {
  BOOTREQUEST,
  DHCP_MIN_MAX_MESSAGE,
  DHCPACK,
  DHCPDECLINE,
  DHCPDISCOVER,
  DHCPINFORM,
  DHCPNAK,
  DHCPOFFER,
  DHCPRELEASE,
  DHCPREQUEST,
  type DhcpMessage,
  type DhcpReplyFields,
  emitDhcp,
  encodeDomainSearch,
  maxMessageSize,
  OPT_DOMAIN_SEARCH,
  parameterRequestList,
  requestedHostname,
  requestedIp,
  serverIdentifier,
} from "../wire/dhcp.js";

export interface DhcpServerOptions {
  serverIp: number;
  subnetMask: number;
  router: number;
  dnsServers: number[];
  searchDomains?: string[];
  mtu?: number;
  /** Pool: first..last address handed out dynamically (skip gateway/host/reserved addresses the caller lists in `reserved`). */
  poolStart: number;
  poolEnd: number;
  /** Never handed out dynamically. The server, router and DNS addresses are always skipped too. */
  reserved?: number[];
  leaseTimeSeconds?: number;
  staticLeases?: { mac: string; ip: number; hostname?: string }[];
  /** How long an address a client declined (found in use) is kept out of the pool; default 600 s. */
  declineHoldSeconds?: number;
  /**
   * How long an offered address waits for the client's REQUEST (default 5 s). Until then it is
   * only lent: when the pool runs dry, the oldest offer goes to the next client, and a REQUEST
   * for an address merely offered to another client is granted, so a flood of DISCOVERs from
   * made-up MACs cannot starve a real guest.
   */
  offerHoldSeconds?: number;
  clock: Now;
}

export interface DhcpReply {
  /** The UDP payload, owned by the caller. */
  message: Buffer;
  /** Where to send: broadcast when the client asked for it or has no address yet (RFC 2131 4.1), else unicast. */
  dstIp: number;
  dstMac: Buffer;
  broadcast: boolean;
  /** An ACK that binds an address: the client's MAC now owns it; `renewed` when it already did. */
  bound?: { ip: number; mac: Buffer; renewed: boolean; hostname?: string | undefined };
}

export interface Lease {
  /** Lower-case, colon-separated. */
  mac: string;
  ip: number;
  hostname?: string;
  /** Clock time (ms) at which the lease runs out. */
  expiresAt: number;
  static: boolean;
}

export interface DhcpServerStats {
  offers: number;
  acks: number;
  naks: number;
  releases: number;
  declines: number;
  /** Messages not answered, by reason ("pool-exhausted", "other-server", "malformed", ...). */
  drops: Record<string, number>;
}

/**
 * One address per MAC. The record outlives its lease ("free") so that a returning MAC gets the
 * same address back; a free record is reclaimed only when the pool has nothing never-used left.
 */
interface Binding {
  mac: string;
  ip: number;
  hostname?: string;
  state: "offered" | "bound" | "free";
  expiresAt: number;
  static: boolean;
}

/** Pools are scanned linearly on allocation; a /16 is more than any guest link needs. */
const MAX_POOL = 65_536;
const BROADCAST_IP = 0xffffffff;
/** IPv4 (20) + UDP (8) headers, counted against the client's maximum message size. */
const IP_UDP_OVERHEAD = 28;

/**
 * A DHCPv4 server's lease logic (RFC 2131 4.3), without sockets or timers: the caller parses a
 * request, passes it to `handle` and sends the reply it gets back. Leases expire lazily against
 * the injected clock.
 */
export class DhcpServer {
  readonly stats: DhcpServerStats = { offers: 0, acks: 0, naks: 0, releases: 0, declines: 0, drops: {} };
  private readonly byMac = new Map<string, Binding>();
  private readonly byIp = new Map<number, Binding>();
  private readonly declined = new Map<number, number>();
  private readonly reserved: Set<number>;
  private readonly mask: number;
  private readonly network: number;
  private readonly subnetBroadcast: number;
  private readonly leaseSeconds: number;
  private readonly declineHoldMs: number;
  private readonly offerHoldMs: number;

  constructor(private readonly o: DhcpServerOptions) {
    const mask = o.subnetMask >>> 0;
    this.mask = mask;
    // A contiguous mask: its inverse plus one is a power of two.
    if (mask === 0 || (((~mask >>> 0) + 1) & ~mask) !== 0)
      throw new ConfigError(`bad subnet mask ${ipv4ToString(mask)}`);
    this.network = (o.serverIp & mask) >>> 0;
    this.subnetBroadcast = (this.network | ~mask) >>> 0;
    if (!this.inSubnet(o.serverIp))
      throw new ConfigError(`server ${ipv4ToString(o.serverIp)} is not a host address`);
    if (!this.inSubnet(o.poolStart) || !this.inSubnet(o.poolEnd) || o.poolStart > o.poolEnd) {
      throw new ConfigError(
        `pool ${ipv4ToString(o.poolStart)}-${ipv4ToString(o.poolEnd)} is not a range in the subnet`,
      );
    }
    if (o.poolEnd - o.poolStart + 1 > MAX_POOL)
      throw new ConfigError(`pool larger than ${MAX_POOL} addresses`);
    if (o.mtu !== undefined && (!Number.isInteger(o.mtu) || o.mtu < 68 || o.mtu > 65535)) {
      throw new ConfigError(`bad MTU ${o.mtu}`);
    }
    this.leaseSeconds = o.leaseTimeSeconds ?? 3600;
    if (!Number.isInteger(this.leaseSeconds) || this.leaseSeconds < 60 || this.leaseSeconds > 0xfffffffe) {
      throw new ConfigError(`bad lease time ${this.leaseSeconds}`);
    }
    this.declineHoldMs = (o.declineHoldSeconds ?? 600) * 1000;
    this.offerHoldMs = (o.offerHoldSeconds ?? 5) * 1000;
    try {
      encodeDomainSearch(o.searchDomains ?? []);
    } catch (e) {
      if (WireError.isInstance(e))
        throw new ConfigError(`bad search domain in ${o.searchDomains?.join(" ")}`);
      throw e;
    }
    this.reserved = new Set(
      [o.serverIp, o.router, ...o.dnsServers, ...(o.reserved ?? [])].map((ip) => ip >>> 0),
    );
    for (const s of o.staticLeases ?? []) this.addStaticLease(s.mac, s.ip, s.hostname);
  }

  /** Reserve a specific address for a MAC (used when the guest is configured statically). */
  addStaticLease(mac: string, ip: number, hostname?: string): void {
    const key = normalizeMac(mac);
    ip >>>= 0;
    if (!this.inSubnet(ip) || ip === this.o.serverIp)
      throw new ConfigError(`static lease ${ipv4ToString(ip)} is not usable`);
    const holder = this.byIp.get(ip);
    if (holder?.static && holder.mac !== key)
      throw new ConfigError(`${ipv4ToString(ip)} is already reserved for ${holder.mac}`);
    // Whoever held the address dynamically loses it: its next renewal is NAKed.
    if (holder) this.unlink(holder);
    const own = this.byMac.get(key);
    if (own) this.unlink(own);
    const keep = own?.ip === ip && own.state !== "free";
    this.link({
      mac: key,
      ip,
      hostname: hostname ?? own?.hostname,
      state: keep ? own.state : "free",
      expiresAt: keep ? own.expiresAt : 0,
      static: true,
    });
  }

  /** Bound, unexpired leases. */
  leases(): Lease[] {
    const now = this.o.clock.now();
    const out: Lease[] = [];
    for (const b of this.byMac.values()) {
      if (b.state === "bound" && b.expiresAt > now) {
        out.push({ mac: b.mac, ip: b.ip, hostname: b.hostname, expiresAt: b.expiresAt, static: b.static });
      }
    }
    return out;
  }

  /**
   * The MAC (lower case) that owns `ip`: a bound, unexpired lease, or a static reservation.
   * Frames from any other MAC with this source address are spoofed.
   */
  ownerOf(ip: number): string | undefined {
    const b = this.byIp.get(ip >>> 0);
    if (!b) return undefined;
    if (b.static || (b.state === "bound" && b.expiresAt > this.o.clock.now())) return b.mac;
    return undefined;
  }

  /** Answers one client message; undefined when no reply is due (counted in `stats.drops` when dropped). */
  handle(msg: DhcpMessage): DhcpReply | undefined {
    if (msg.op !== BOOTREQUEST) return this.drop("not-request");
    // Relay agents have no place on a virtual link to one guest.
    if (msg.giaddr !== 0) return this.drop("relayed");
    const sid = serverIdentifier(msg);
    switch (msg.messageType) {
      case DHCPDISCOVER:
        return this.discover(msg);
      case DHCPREQUEST:
        return this.request(msg, sid);
      case DHCPRELEASE:
        if (sid !== undefined && sid !== this.o.serverIp) return this.drop("other-server");
        this.release(msg);
        return undefined;
      case DHCPDECLINE:
        if (sid !== undefined && sid !== this.o.serverIp) return this.drop("other-server");
        this.decline(msg);
        return undefined;
      case DHCPINFORM:
        return this.inform(msg);
      case undefined:
        return this.drop("bootp");
      default:
        return this.drop("bad-type");
    }
  }

  private discover(msg: DhcpMessage): DhcpReply | undefined {
    const mac = macToString(msg.chaddr);
    const now = this.o.clock.now();
    const ip = this.choose(mac, requestedIp(msg), now);
    if (ip === undefined) return this.drop("pool-exhausted");
    const b = this.bind(mac, ip, requestedHostname(msg));
    if (!(b.state === "bound" && b.expiresAt > now)) {
      b.state = "offered";
      b.expiresAt = now + this.offerHoldMs;
    }
    this.stats.offers++;
    return this.reply(msg, DHCPOFFER, ip, b.hostname);
  }

  private request(msg: DhcpMessage, sid: number | undefined): DhcpReply | undefined {
    const mac = macToString(msg.chaddr);
    const now = this.o.clock.now();
    const asked = requestedIp(msg);
    if (sid !== undefined) {
      // SELECTING. A client that chose another server's offer frees ours.
      if (sid !== this.o.serverIp) {
        const mine = this.byMac.get(mac);
        if (mine?.state === "offered") mine.state = "free";
        return this.drop("other-server");
      }
      if (asked === undefined || msg.ciaddr !== 0) return this.drop("malformed");
      return this.grant(msg, mac, asked, now);
    }
    // INIT-REBOOT names the address in option 50; RENEWING/REBINDING in ciaddr.
    const ip = asked ?? (msg.ciaddr || undefined);
    if (ip === undefined) return this.drop("malformed");
    return this.grant(msg, mac, ip, now);
  }

  /** ACK `ip` to `mac` when it is (or may become) theirs; NAK otherwise. */
  private grant(msg: DhcpMessage, mac: string, ip: number, now: number): DhcpReply {
    if (!this.usableBy(mac, ip, now, true)) {
      this.stats.naks++;
      return this.nak(msg, this.inSubnet(ip) ? "address not available" : "wrong network");
    }
    const before = this.byMac.get(mac);
    const renewed = before?.state === "bound" && before.ip === ip && before.expiresAt > now;
    const b = this.bind(mac, ip, requestedHostname(msg));
    b.state = "bound";
    b.expiresAt = now + this.leaseSeconds * 1000;
    this.stats.acks++;
    return {
      ...this.reply(msg, DHCPACK, ip, b.hostname),
      bound: { ip, mac: Buffer.from(msg.chaddr), renewed, hostname: b.hostname },
    };
  }

  private release(msg: DhcpMessage): void {
    const b = this.byMac.get(macToString(msg.chaddr));
    if (b === undefined || b.ip !== msg.ciaddr || b.state !== "bound") {
      this.drop("unknown-lease");
      return;
    }
    // The record stays so that the MAC gets this address again.
    b.state = "free";
    b.expiresAt = this.o.clock.now();
    this.stats.releases++;
  }

  private decline(msg: DhcpMessage): void {
    const ip = requestedIp(msg);
    const b = this.byMac.get(macToString(msg.chaddr));
    if (ip === undefined || b === undefined || b.ip !== ip) {
      this.drop("unknown-lease");
      return;
    }
    // Someone else uses the address: keep it out of the pool and let the client start over.
    this.declined.set(ip, this.o.clock.now() + this.declineHoldMs);
    if (!b.static) this.unlink(b);
    else b.state = "free";
    this.stats.declines++;
  }

  private inform(msg: DhcpMessage): DhcpReply | undefined {
    if (msg.ciaddr === 0) return this.drop("malformed");
    // Configuration for an address of another network, or one of ours that is not a guest's, is a lie.
    if (!this.inSubnet(msg.ciaddr) || this.reserved.has(msg.ciaddr >>> 0))
      return this.drop("inform-wrong-network");
    this.stats.acks++;
    // RFC 2131 3.4: configuration only; no lease, no yiaddr.
    return this.reply(msg, DHCPACK, 0, undefined);
  }

  /** RFC 2131 4.3.1 order: the MAC's reservation or previous address, the one it asks for, then the pool. */
  private choose(mac: string, asked: number | undefined, now: number): number | undefined {
    const own = this.byMac.get(mac);
    if (own && this.usableBy(mac, own.ip, now)) return own.ip;
    if (asked !== undefined && this.usableBy(mac, asked, now)) return asked;
    let oldest: Binding | undefined;
    let oldestOffer: Binding | undefined;
    for (let ip = this.o.poolStart; ip <= this.o.poolEnd; ip++) {
      if (!this.usableBy(mac, ip, now, true)) continue;
      const holder = this.byIp.get(ip);
      if (holder === undefined) return ip;
      if (holder.state === "offered" && holder.expiresAt > now) {
        if (oldestOffer === undefined || holder.expiresAt < oldestOffer.expiresAt) oldestOffer = holder;
      } else if (oldest === undefined || holder.expiresAt < oldest.expiresAt) oldest = holder;
    }
    // Reuse the address that has been free the longest (its old owner will get another), and
    // only when none is left, the one offered longest ago and still not requested.
    return (oldest ?? oldestOffer)?.ip;
  }

  /** May `mac` hold `ip` now? With `takeOffers`, an address only offered to another MAC counts as free. */
  private usableBy(mac: string, ip: number, now: number, takeOffers = false): boolean {
    if (!this.inSubnet(ip)) return false;
    const holder = this.byIp.get(ip);
    if (holder?.mac === mac) return true;
    if (holder?.static) return false;
    const lent = holder?.state === "offered" && takeOffers;
    if (holder && holder.state !== "free" && holder.expiresAt > now && !lent) return false;
    const own = this.byMac.get(mac);
    // A MAC with a reservation gets that address only.
    if (own?.static) return false;
    if (ip < this.o.poolStart || ip > this.o.poolEnd || this.reserved.has(ip)) return false;
    const until = this.declined.get(ip);
    if (until !== undefined) {
      if (until > now) return false;
      this.declined.delete(ip);
    }
    return true;
  }

  /** Makes `ip` the MAC's address, taking it from a lapsed holder; returns the binding. */
  private bind(mac: string, ip: number, hostname: string | undefined): Binding {
    const own = this.byMac.get(mac);
    if (own?.ip === ip) {
      if (hostname !== undefined && !own.static) own.hostname = hostname;
      else own.hostname ??= hostname;
      return own;
    }
    if (own) this.unlink(own);
    const holder = this.byIp.get(ip);
    if (holder) this.unlink(holder);
    const b: Binding = { mac, ip, hostname, state: "free", expiresAt: 0, static: false };
    this.link(b);
    return b;
  }

  private link(b: Binding): void {
    this.byMac.set(b.mac, b);
    this.byIp.set(b.ip, b);
  }

  private unlink(b: Binding): void {
    if (this.byMac.get(b.mac) === b) this.byMac.delete(b.mac);
    if (this.byIp.get(b.ip) === b) this.byIp.delete(b.ip);
  }

  private inSubnet(ip: number): boolean {
    ip >>>= 0;
    return (ip & this.mask) >>> 0 === this.network && ip !== this.network && ip !== this.subnetBroadcast;
  }

  private reply(msg: DhcpMessage, type: number, yiaddr: number, hostname: string | undefined): DhcpReply {
    // INFORM (yiaddr 0) gets configuration only.
    const lease = yiaddr === 0 ? undefined : this.leaseSeconds;
    const fields: DhcpReplyFields = {
      messageType: type,
      xid: msg.xid,
      secs: 0,
      broadcast: msg.broadcast,
      ciaddr: msg.ciaddr,
      yiaddr,
      siaddr: this.o.serverIp,
      chaddr: msg.chaddr,
      serverId: this.o.serverIp,
      leaseTimeSeconds: lease,
      renewalSeconds: lease === undefined ? undefined : Math.floor(lease / 2),
      rebindingSeconds: lease === undefined ? undefined : Math.floor((lease * 7) / 8),
      subnetMask: this.o.subnetMask,
      broadcastAddress: this.subnetBroadcast,
      routers: [this.o.router],
      dnsServers: this.o.dnsServers,
      domainName: this.o.searchDomains?.[0],
      // The search list is the one option that can grow large: send it only when asked (RFC 2131 4.3.1).
      searchDomains: parameterRequestList(msg).includes(OPT_DOMAIN_SEARCH) ? this.o.searchDomains : undefined,
      mtu: this.o.mtu,
      hostname,
    };
    let message = emitDhcp(fields);
    const limit = Math.max(DHCP_MIN_MAX_MESSAGE, maxMessageSize(msg) ?? 0) - IP_UDP_OVERHEAD;
    if (message.length > limit)
      message = emitDhcp({ ...fields, searchDomains: undefined, hostname: undefined });
    return this.destination(msg, message, msg.ciaddr);
  }

  private nak(msg: DhcpMessage, why: string): DhcpReply {
    const message = emitDhcp({
      messageType: DHCPNAK,
      xid: msg.xid,
      broadcast: msg.broadcast,
      chaddr: msg.chaddr,
      serverId: this.o.serverIp,
      message: why,
    });
    // RFC 2131 4.1: without a relay, NAKs are always broadcast.
    return { message, dstIp: BROADCAST_IP, dstMac: Buffer.from(BROADCAST_MAC), broadcast: true };
  }

  /**
   * A configured client (ciaddr set) gets unicast. Otherwise we broadcast: on a virtual link to one
   * guest it costs nothing and reaches clients that cannot take unicast before they are configured
   * even when they did not set the broadcast flag.
   */
  private destination(msg: DhcpMessage, message: Buffer, ciaddr: number): DhcpReply {
    if (ciaddr !== 0 && !msg.broadcast) {
      return { message, dstIp: ciaddr, dstMac: Buffer.from(msg.chaddr), broadcast: false };
    }
    return { message, dstIp: BROADCAST_IP, dstMac: Buffer.from(BROADCAST_MAC), broadcast: true };
  }

  private drop(reason: string): undefined {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
    return undefined;
  }
}

function normalizeMac(mac: string): string {
  const parsed = parseMac(mac);
  if (parsed === undefined) throw new ConfigError(`bad MAC address ${mac}`);
  return macToString(parsed);
}
