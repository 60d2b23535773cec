/** IPv4 addresses are unsigned 32-bit numbers on the hot path; MACs are 6-byte Buffers. */

export function ipv4ToString(ip: number): string {
  return `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
}

/**
 * Parses dotted-quad notation; returns undefined when `text` is not an IPv4 address. Leading
 * zeros are refused, as ip-num does: inet_aton reads "010" as octal, so they are ambiguous.
 */
export function parseIpv4Address(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let ip = 0;
  for (const part of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    ip = ip * 256 + n;
  }
  return ip >>> 0;
}

export function macToString(mac: Buffer): string {
  return Array.from(mac.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join(":");
}

export function parseMac(text: string): Buffer | undefined {
  const parts = text.split(/[:-]/);
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) return undefined;
  return Buffer.from(parts.map((p) => Number.parseInt(p, 16)));
}

export const BROADCAST_MAC: Buffer = Buffer.alloc(6, 0xff);

export function isBroadcastMac(mac: Buffer): boolean {
  return (mac[0]! & mac[1]! & mac[2]! & mac[3]! & mac[4]! & mac[5]!) === 0xff;
}

export function isMulticastMac(mac: Buffer): boolean {
  return (mac[0]! & 1) === 1;
}
