/**
 * Just enough IPv4 arithmetic to validate a `--subnet` before anything touches the system.
 * The stack derives gateway/host/lease addresses itself; the app only rejects bad input early
 * with a message that names the option.
 */

/** Parses a dotted quad ("192.168.65.1") to an unsigned 32-bit number; undefined if malformed. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    // Leading zeros are rejected: inet_aton reads "010" as octal, so they are ambiguous.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return undefined;
    const octet = Number(part);
    if (octet > 255) return undefined;
    value = value * 256 + octet;
  }
  return value;
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join(".");
}

export interface Ipv4Cidr {
  /** Network address, host bits zero. */
  network: number;
  prefixLength: number;
}

/** Why a CIDR string was rejected, phrased for a user. */
export type CidrProblem = { problem: string };

export function parseIpv4Cidr(text: string): Ipv4Cidr | CidrProblem {
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  if (!match) return { problem: `"${text}" is not in CIDR notation (like 192.168.65.0/24)` };
  const address = parseIpv4(match[1]!);
  if (address === undefined) return { problem: `"${match[1]}" is not an IPv4 address` };
  const prefixLength = Number(match[2]);
  if (prefixLength > 32) return { problem: `prefix length /${prefixLength} is larger than 32` };
  const mask = prefixLength === 0 ? 0 : (0xffff_ffff << (32 - prefixLength)) >>> 0;
  const network = (address & mask) >>> 0;
  if (network !== address) {
    return {
      problem: `"${text}" has host bits set; did you mean ${formatIpv4(network)}/${prefixLength}?`,
    };
  }
  return { network, prefixLength };
}
