/**
 * The one line `desktopd run` prints on stdout once the guest can use the network. Scripts
 * and tests wait for it, so the format is a contract: `desktopd ready` then key=value pairs.
 */
export const READY_PREFIX = "desktopd ready";

export interface ReadyInfo {
  /** With --netns: the namespace, its NIC and the NIC's MAC. */
  netns?: string;
  ifname?: string;
  mac?: string;
  gateway: string;
  /** Address that reaches the host's 127.0.0.1. */
  host: string;
  /** The guest's address with prefix length; only when desktopd configured the guest. */
  address?: string;
  mtu: number;
  /** The guests' subnet, "192.168.65.0/24". */
  subnet: string;
  /** The guests' IPv6 prefix, "fdc4:f303:9324::/64", when IPv6 is on. */
  ipv6?: string | undefined;
  /** Sockets served for qemu (unix paths, tcp:HOST:PORT). */
  qemu: string[];
  /** Unix datagram sockets served for vfkit/krunkit/qemu dgram. */
  vfkit: string[];
  stdio?: boolean;
  /** The control API's socket, when it is served. */
  control?: string;
  /** Published ports, `tcp/127.0.0.1:8080>80,...` (host side > guest port); only when any are. */
  published?: string;
  /** Prometheus metrics on loopback TCP, `http://127.0.0.1:9464/metrics`, with --metrics. */
  metrics?: string;
  /** The status page's URL with its token, with --ui. Not on the ready line: the token is a secret. */
  ui?: string;
}

export function formatReadyLine(info: ReadyInfo): string {
  const pairs: [string, string | number | undefined][] = [
    ["netns", info.netns],
    ["ifname", info.ifname],
    ["mac", info.mac],
    ["gateway", info.gateway],
    ["host", info.host],
    ["address", info.address],
    ["mtu", info.mtu],
    ["subnet", info.subnet],
    ["ipv6", info.ipv6],
    ["qemu", info.qemu.length > 0 ? info.qemu.join(",") : undefined],
    ["vfkit", info.vfkit.length > 0 ? info.vfkit.join(",") : undefined],
    ["stdio", info.stdio ? "yes" : undefined],
    ["control", info.control],
    ["published", info.published],
    ["metrics", info.metrics],
  ];
  const fields = pairs.filter(([, value]) => value !== undefined).map(([key, value]) => `${key}=${value}`);
  return `${READY_PREFIX} ${fields.join(" ")}`;
}

/** Reads the key=value pairs of a ready line; undefined if `line` is not one. */
export function parseReadyLine(line: string): Record<string, string> | undefined {
  const trimmed = line.trim();
  if (trimmed !== READY_PREFIX && !trimmed.startsWith(`${READY_PREFIX} `)) return undefined;
  const fields: Record<string, string> = {};
  for (const token of trimmed.slice(READY_PREFIX.length).split(" ")) {
    const eq = token.indexOf("=");
    if (eq > 0) fields[token.slice(0, eq)] = token.slice(eq + 1);
  }
  return fields;
}
