/**
 * Who holds a port, on Linux: /proc/net/{tcp,tcp6,udp,udp6} map the address to a socket inode,
 * and /proc/PID/fd links (`socket:[INODE]`) map the inode to a process. Parsing is pure; the
 * lookup reads /proc and answers undefined wherever it is not allowed to look.
 */
import { readdir, readFile, readlink } from "node:fs/promises";
import { isIPv4, SocketAddress } from "node:net";
import { endianness } from "node:os";
import { IPv4, IPv6 } from "ip-num";

export interface PortHolder {
  pid: number;
  /** /proc/PID/comm, e.g. "nginx". */
  command: string;
  /** /proc/PID/cmdline with spaces, when readable. */
  cmdline?: string;
  /** The address the holder's socket is bound to, e.g. "0.0.0.0:8080" or "[::]:8080". */
  localAddress?: string;
  inode: number;
}

/** One socket line of /proc/net/{tcp,udp}{,6}. */
export interface ProcNetEntry {
  family: 4 | 6;
  /** Numeric address (host order), comparable across notations. */
  value: bigint;
  /** Canonical text form, e.g. "127.0.0.1", "::". */
  addressText: string;
  port: number;
  /** Kernel state number: 0x0A is TCP LISTEN, 0x07 an unconnected UDP socket. */
  state: number;
  inode: number;
}

/** Processes whose fds are read at once. */
const SCAN_CONCURRENCY = 8;
const TCP_LISTEN = 0x0a;
const UDP_UNCONNECTED = 0x07;

/** Parses a /proc/net/{tcp,udp}{,6} table; malformed lines are skipped. */
export function parseProcNet(
  text: string,
  family: 4 | 6,
  littleEndian = endianness() === "LE",
): ProcNetEntry[] {
  const entries: ProcNetEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [addrHex, portHex] = f[1]!.split(":");
    const hexLength = family === 4 ? 8 : 32;
    if (addrHex?.length !== hexLength || !/^[0-9A-Fa-f]+$/.test(addrHex) || !portHex) continue;
    const bytes = Buffer.from(addrHex, "hex");
    // The kernel prints each 32-bit word of the address in host byte order.
    if (littleEndian) for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
    const value = BigInt(`0x${bytes.toString("hex")}`);
    const addressText =
      family === 4
        ? [...bytes].join(".")
        : new SocketAddress({ address: new IPv6(value).toString(), family: "ipv6" }).address;
    const inode = Number(f[9]);
    const port = Number.parseInt(portHex, 16);
    const state = Number.parseInt(f[3]!, 16);
    if (!Number.isInteger(inode) || Number.isNaN(port) || Number.isNaN(state)) continue;
    entries.push({ family, value, addressText, port, state, inode });
  }
  return entries;
}

/**
 * Sockets that conflict with binding `address:port`: bound to the same port with the same
 * address, or a wildcard that covers it (`::` covers IPv4 too, dual-stack; `0.0.0.0` covers
 * IPv4-mapped IPv6 only). TCP counts listeners only, UDP every socket.
 */
export function conflictingSockets(
  entries: readonly ProcNetEntry[],
  protocol: "tcp" | "udp",
  address: string,
  port: number,
): ProcNetEntry[] {
  const want = addressValue(address);
  return entries.filter((e) => {
    if (e.port !== port || e.inode === 0) return false;
    if (protocol === "tcp" ? e.state !== TCP_LISTEN : e.state !== UDP_UNCONNECTED && e.state !== 1)
      return false;
    return covers(e, want) || covers(want, e);
  });
}

/**
 * Whether binding both addresses to one port would collide, as Linux decides it for a
 * dual-stack host: `::` covers every address, `0.0.0.0` IPv4 (and IPv4-mapped IPv6) only.
 */
export function addressesOverlap(a: string, b: string): boolean {
  const x = addressValue(a);
  const y = addressValue(b);
  return covers(x, y) || covers(y, x);
}

/** Whether `a`, when a wildcard, covers `b`, or they are the same endpoint. */
function covers(a: { family: 4 | 6; value: bigint }, b: { family: 4 | 6; value: bigint }): boolean {
  const v4 = (x: { family: 4 | 6; value: bigint }) => (x.family === 4 ? x.value : mappedV4(x.value));
  if (a.value === 0n) return a.family === 6 || b.family === 4 || v4(b) !== undefined || b.value === 0n;
  if (a.family === b.family) return a.value === b.value;
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the same endpoint as a.b.c.d.
  return v4(a) !== undefined && v4(a) === v4(b);
}

function addressValue(address: string): { family: 4 | 6; value: bigint } {
  return isIPv4(address)
    ? { family: 4, value: IPv4.fromString(address).getValue() }
    : { family: 6, value: IPv6.fromString(address).getValue() };
}

function mappedV4(v6: bigint): bigint | undefined {
  return v6 >> 32n === 0xffffn ? v6 & 0xffffffffn : undefined;
}

/** Finds the process holding `address:port`, or undefined when /proc does not tell. */
export async function findPortHolder(
  protocol: "tcp" | "udp",
  address: string,
  port: number,
  procRoot = "/proc",
): Promise<PortHolder | undefined> {
  if (process.platform !== "linux") return undefined;
  const entries: ProcNetEntry[] = [];
  for (const family of [4, 6] as const) {
    const file = `${procRoot}/net/${protocol}${family === 6 ? "6" : ""}`;
    const text = await readFile(file, "utf8").catch(() => "");
    entries.push(...parseProcNet(text, family));
  }
  const sockets = conflictingSockets(entries, protocol, address, port);
  if (sockets.length === 0) return undefined;
  const byInode = new Map(sockets.map((s) => [`socket:[${s.inode}]`, s]));
  const pids = (await readdir(procRoot).catch(() => [] as string[])).filter((d) => /^\d+$/.test(d));
  // Processes are read a few at a time (thousands of fds each, one by one, took seconds); a
  // process that exits meanwhile, or whose fds we may not read, is skipped.
  let found: { pid: string; socket: ProcNetEntry } | undefined;
  let next = 0;
  const worker = async () => {
    while (!found && next < pids.length) {
      const pid = pids[next++]!;
      const fds = await readdir(`${procRoot}/${pid}/fd`).catch(() => [] as string[]);
      const links = await Promise.all(
        fds.map((fd) => readlink(`${procRoot}/${pid}/fd/${fd}`).catch(() => "")),
      );
      const socket = links.map((l) => byInode.get(l)).find((s) => s !== undefined);
      if (socket) found ??= { pid, socket };
    }
  };
  await Promise.all(Array.from({ length: SCAN_CONCURRENCY }, worker));
  if (!found) return undefined;
  const { pid, socket } = found;
  const command = (await readFile(`${procRoot}/${pid}/comm`, "utf8").catch(() => "?")).trim();
  const raw = await readFile(`${procRoot}/${pid}/cmdline`, "utf8").catch(() => "");
  const cmdline = raw.split("\0").filter(Boolean).join(" ");
  const host = socket.family === 6 ? `[${socket.addressText}]` : socket.addressText;
  return {
    pid: Number(pid),
    command,
    ...(cmdline ? { cmdline } : {}),
    localAddress: `${host}:${socket.port}`,
    inode: socket.inode,
  };
}
