import { MAX_MTU, MIN_MTU } from "@desktopd/core";
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

/** Resolved addressing: numbers for the hot path, strings for people. */
export interface NetworkConfig {
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

export function resolveNetworkConfig(o: NetworkOptions = {}): NetworkConfig {
  const subnetText = o.subnet ?? "192.168.65.0/24";
  if (!Validator.isValidIPv4CidrNotation(subnetText)[0]) {
    throw new ConfigError(`subnet: "${subnetText}" is not an IPv4 CIDR such as 192.168.65.0/24`);
  }
  const range = IPv4CidrRange.fromCidr(subnetText);
  const prefixLength = Number(range.getPrefix().getValue());
  if (prefixLength > 29) throw new ConfigError(`subnet: /${prefixLength} is too small; use /29 or larger`);
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
