import { DEFAULT_SUBNET, MAX_MTU, MIN_MTU } from "@desktopd/core";
import { IPv4CidrRange, Validator } from "ip-num";
import { ConfigError } from "./errors.js";
import { ipv4ToString, parseIpv4Address, parseMac } from "./wire/address.js";

export interface StaticLease {
  mac: string;
  ip: string;
  hostname?: string;
}

/** Addressing of the virtual network; defaults follow Docker Desktop. */
export interface NetworkOptions {
  /** CIDR of the guest network (default "192.168.65.0/24"). */
  subnet?: string;
  /** Gateway address (default: first host of the subnet, ".1"). */
  gateway?: string;
  /** Address that reaches the host's 127.0.0.1 (default: last host of the subnet, ".254"). */
  hostAddress?: string;
  /** First address handed out by DHCP (default ".3"). */
  firstLease?: string;
  /** Link MTU, 68..65520 (default 1500). */
  mtu?: number;
  /** DNS servers handed out by DHCP (default: the gateway). */
  dnsServers?: string[];
  searchDomains?: string[];
  leaseTimeSeconds?: number;
  staticLeases?: StaticLease[];
  /** MAC of the gateway on the virtual network (default 5a:94:ef:e4:0c:dd, as vpnkit). */
  gatewayMac?: string;
}

/** The addressing resolved from NetworkOptions, as numbers for the hot path (`StackConfig` is the same for people). */
export interface ResolvedNetwork {
  subnet: string;
  network: number;
  prefixLength: number;
  netmask: number;
  broadcast: number;
  gateway: number;
  hostAddress: number;
  firstLease: number;
  lastLease: number;
  mtu: number;
  dnsServers: number[];
  searchDomains: string[];
  leaseTimeSeconds: number;
  staticLeases: StaticLease[];
  gatewayMac: Buffer;
}

function address(name: string, text: string): number {
  const ip = parseIpv4Address(text);
  if (ip === undefined) throw new ConfigError(`${name}: "${text}" is not an IPv4 address`);
  return ip;
}

/**
 * What is wrong with `text` as a guest subnet, phrased for a user, or undefined when it is usable:
 * an IPv4 CIDR without host bits, /1 to /29 (the smallest with room for the gateway, the host
 * address and a lease).
 */
export function subnetProblem(text: string): string | undefined {
  const match = /^([0-9.]+)\/([0-9]{1,2})$/.exec(text);
  if (!match) return `"${text}" is not in CIDR notation (like 192.168.65.0/24)`;
  const address = parseIpv4Address(match[1]!);
  if (address === undefined) return `"${match[1]}" is not an IPv4 address`;
  const prefixLength = Number(match[2]);
  if (prefixLength > 32) return `prefix length /${prefixLength} is larger than 32`;
  if (!Validator.isValidIPv4CidrRange(text)[0]) {
    const start = IPv4CidrRange.fromCidr(text).getFirst().toString();
    return `"${text}" has host bits set; did you mean ${start}/${prefixLength}?`;
  }
  if (prefixLength < 1 || prefixLength > 29) {
    return `prefix length must be between /1 and /29, got /${prefixLength}`;
  }
  return undefined;
}

export function resolveNetwork(o: NetworkOptions = {}): ResolvedNetwork {
  const subnetText = o.subnet ?? DEFAULT_SUBNET;
  const problem = subnetProblem(subnetText);
  if (problem) throw new ConfigError(`subnet: ${problem}`);
  const range = IPv4CidrRange.fromCidr(subnetText);
  const prefixLength = Number(range.getPrefix().getValue());
  const netmask = prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
  const network = (Number(range.getFirst().getValue()) & netmask) >>> 0;
  const broadcast = (network | ~netmask) >>> 0;
  const inSubnet = (ip: number) => (ip & netmask) >>> 0 === network && ip !== network && ip !== broadcast;

  const gateway = o.gateway ? address("gateway", o.gateway) : network + 1;
  const hostAddress = o.hostAddress ? address("hostAddress", o.hostAddress) : broadcast - 1;
  const firstLease = o.firstLease ? address("firstLease", o.firstLease) : network + 3;
  for (const [name, ip] of [
    ["gateway", gateway],
    ["hostAddress", hostAddress],
    ["firstLease", firstLease],
  ] as const) {
    if (!inSubnet(ip))
      throw new ConfigError(`${name}: ${ipv4ToString(ip)} is not a host address of ${subnetText}`);
  }
  if (gateway === hostAddress) throw new ConfigError("gateway and hostAddress must differ");
  const mtu = o.mtu ?? 1500;
  if (!Number.isInteger(mtu) || mtu < MIN_MTU || mtu > MAX_MTU) {
    throw new ConfigError(`mtu: ${mtu} is out of range ${MIN_MTU}..${MAX_MTU}`);
  }
  const gatewayMac = parseMac(o.gatewayMac ?? "5a:94:ef:e4:0c:dd");
  if (!gatewayMac) throw new ConfigError(`gatewayMac: "${o.gatewayMac}" is not a MAC address`);
  for (const lease of o.staticLeases ?? []) {
    if (!parseMac(lease.mac)) throw new ConfigError(`staticLeases: "${lease.mac}" is not a MAC address`);
    if (!inSubnet(address("staticLeases", lease.ip)))
      throw new ConfigError(`staticLeases: ${lease.ip} is outside ${subnetText}`);
  }
  return {
    subnet: `${ipv4ToString(network)}/${prefixLength}`,
    network,
    prefixLength,
    netmask,
    broadcast,
    gateway,
    hostAddress,
    firstLease,
    lastLease: broadcast - 1,
    mtu,
    dnsServers: (o.dnsServers ?? [ipv4ToString(gateway)]).map((s) => address("dnsServers", s)),
    searchDomains: o.searchDomains ?? [],
    leaseTimeSeconds: o.leaseTimeSeconds ?? 3600,
    staticLeases: o.staticLeases ?? [],
    gatewayMac,
  };
}
