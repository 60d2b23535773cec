import type { ResolvedNetwork } from "../config.js";
import { ipv4ToString } from "../wire/address.js";

export const HOST_LOOPBACK = "127.0.0.1";
const LOOPBACK_NUM = 0x7f000001;

/** Where a guest destination goes on the host: the host address is the host's own loopback. */
export function hostTarget(cfg: ResolvedNetwork, dstIp: number): string {
  return dstIp === cfg.hostAddress ? HOST_LOOPBACK : ipv4ToString(dstIp);
}

/** The reverse: a host-side source address as the guest must see it. */
export function guestSource(cfg: ResolvedNetwork, address: string, fallback: number): number {
  if (address === HOST_LOOPBACK || address === "::ffff:127.0.0.1") return cfg.hostAddress;
  const parts = address.replace(/^::ffff:/, "").split(".");
  if (parts.length !== 4) return fallback;
  const ip = parts.reduce((acc, p) => acc * 256 + Number(p), 0);
  return Number.isFinite(ip) ? ip >>> 0 : fallback;
}

export function isLoopback(ip: number): boolean {
  return ip >>> 24 === LOOPBACK_NUM >>> 24;
}
