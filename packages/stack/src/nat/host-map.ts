/**
 * How the NAT maps the network's fixed addresses onto the host: the host address (IPv4 and
 * IPv6) is the host's own loopback, and a reply from the host's loopback comes from the host
 * address. It also says which address is the gateway, for the default flow decision.
 */
import type { ResolvedNetwork } from "../config.js";
import { ipv4ToString } from "../wire/address.js";
import type { IpAddr } from "../wire/ip-addr.js";
import { ipv6ToString, parseIpv6Address } from "../wire/ipv6.js";

export const HOST_LOOPBACK = "127.0.0.1";
export const HOST_LOOPBACK6 = "::1";

/** The IPv6 side's fixed addresses, as text (RFC 5952). */
export interface Ipv6Addresses {
  gateway: string;
  hostAddress: string;
}

export class AddressMap {
  constructor(
    private readonly cfg: ResolvedNetwork,
    private readonly v6: Ipv6Addresses | undefined,
  ) {}

  /** Where a guest destination goes on the host. */
  target(dst: IpAddr): string {
    if (typeof dst === "number") return dst === this.cfg.hostAddress ? HOST_LOOPBACK : ipv4ToString(dst);
    return dst === this.v6?.hostAddress ? HOST_LOOPBACK6 : dst;
  }

  /** A host socket's peer address as the guest must see it, in the family of the guest's flow. */
  guestSource(address: string, v6: boolean): IpAddr | undefined {
    if (!v6) return guestSource4(this.cfg, address);
    if (address === HOST_LOOPBACK6) return this.v6?.hostAddress;
    const bytes = parseIpv6Address(address);
    return bytes ? ipv6ToString(bytes) : undefined;
  }

  isGateway(dst: IpAddr): boolean {
    return typeof dst === "number" ? dst === this.cfg.gateway : dst === this.v6?.gateway;
  }

  /** The host address in `guest`'s family: where dialled connections come from. */
  hostAddressFor(guest: IpAddr): IpAddr | undefined {
    return typeof guest === "number" ? this.cfg.hostAddress : this.v6?.hostAddress;
  }
}

/** A host-side IPv4 source address as the guest sees it; the host address when it is not one. */
function guestSource4(cfg: ResolvedNetwork, address: string): number {
  if (address === HOST_LOOPBACK || address === "::ffff:127.0.0.1") return cfg.hostAddress;
  const parts = address.replace(/^::ffff:/, "").split(".");
  if (parts.length !== 4) return cfg.hostAddress;
  const ip = parts.reduce((acc, p) => acc * 256 + Number(p), 0);
  return Number.isFinite(ip) ? ip >>> 0 : cfg.hostAddress;
}
