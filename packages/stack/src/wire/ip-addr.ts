/**
 * Addresses as the transport layers (TCP, UDP NAT, egress) carry them, whatever the family:
 * IPv4 as its 32-bit number (cheap to compare and key), IPv6 as its RFC 5952 text (one
 * spelling per address, so it keys maps too). `typeof` tells the family.
 */
import { ipv4ToString } from "./address.js";

export type IpAddr = number | string;

export function isIpv6Addr(a: IpAddr): a is string {
  return typeof a === "string";
}

export function formatIp(a: IpAddr): string {
  return typeof a === "number" ? ipv4ToString(a) : a;
}

/** `10.0.2.15:80`, `[fdc4:f303:9324::3]:80`. */
export function formatEndpoint(a: IpAddr, port: number): string {
  return typeof a === "number" ? `${ipv4ToString(a)}:${port}` : `[${a}]:${port}`;
}
