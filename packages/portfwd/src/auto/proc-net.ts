/**
 * The kernel's socket tables (`/proc/net/tcp`, `tcp6`, `udp`, `udp6`), parsed into the listeners a
 * guest has: TCP sockets in LISTEN, UDP sockets bound with no peer. A report is the four tables,
 * each after a marker line (`@tcp`, `@tcp6`, `@udp`, `@udp6`), ended by `@end` — what the netns
 * reader and the VM reporter send. Pure; lines that do not parse are skipped and counted.
 */

export interface Listener {
  protocol: "tcp" | "udp";
  family: 4 | 6;
  /** The bound address: "0.0.0.0", "::", "127.0.0.1", "192.168.65.3", "::1"... */
  address: string;
  port: number;
}

export interface ParsedReport {
  listeners: Listener[];
  /** Table lines that did not parse (header lines excluded). */
  skipped: number;
}

const TCP_LISTEN = "0A";
/** TCP_CLOSE: what an unconnected, bound UDP socket shows. */
const UDP_UNCONNECTED = "07";
export const TABLES = ["tcp", "tcp6", "udp", "udp6"] as const;
export type Table = (typeof TABLES)[number];

/** An address as /proc prints it: 8 (IPv4) or 32 (IPv6) hex digits, each 32-bit word in host (little-endian) order. */
function decodeAddress(hex: string): { family: 4 | 6; address: string } | undefined {
  if (hex.length === 8) {
    const word = Number.parseInt(hex, 16);
    if (Number.isNaN(word)) return undefined;
    return {
      family: 4,
      address: [word & 255, (word >>> 8) & 255, (word >>> 16) & 255, word >>> 24].join("."),
    };
  }
  if (hex.length === 32) {
    const bytes: number[] = [];
    for (let w = 0; w < 4; w++) {
      const word = Number.parseInt(hex.slice(w * 8, w * 8 + 8), 16);
      if (Number.isNaN(word)) return undefined;
      bytes.push(word & 255, (word >>> 8) & 255, (word >>> 16) & 255, word >>> 24);
    }
    // An IPv4-mapped address is the IPv4 one.
    if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 255 && bytes[11] === 255) {
      return { family: 6, address: bytes.slice(12).join(".") };
    }
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    return { family: 6, address: compress(groups) };
  }
  return undefined;
}

/** The longest run of zero groups as "::", as RFC 5952 writes it. */
function compress(groups: string[]): string {
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== "0") {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(":");
  return `${groups.slice(0, best).join(":")}::${groups.slice(best + bestLength).join(":")}`;
}

const HEX = /^[0-9A-Fa-f]+$/;

/** One table's lines: the listeners in it, and how many lines did not parse. */
export function parseTable(text: string, table: Table): ParsedReport {
  const protocol = table.startsWith("tcp") ? "tcp" : "udp";
  const family = table.endsWith("6") ? 6 : 4;
  const listeners: Listener[] = [];
  let skipped = 0;
  for (const line of text.split("\n")) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || fields[0] === "sl" || fields[0] === "") continue;
    const [, local, remote, state] = fields;
    const [addressHex, portHex] = local!.split(":");
    if (
      !/^\d+:$/.test(fields[0]!) ||
      !addressHex ||
      !portHex ||
      !HEX.test(portHex) ||
      !state ||
      !HEX.test(state)
    ) {
      skipped++;
      continue;
    }
    const decoded = decodeAddress(addressHex);
    if (!decoded || (decoded.family === 4) !== (family === 4)) {
      skipped++;
      continue;
    }
    const port = Number.parseInt(portHex, 16);
    if (port < 1 || port > 65535) {
      skipped++;
      continue;
    }
    const listening =
      protocol === "tcp"
        ? state.toUpperCase() === TCP_LISTEN
        : state.toUpperCase() === UDP_UNCONNECTED && /^0+:0+$/.test(remote ?? "");
    if (listening) listeners.push({ protocol, family, address: decoded.address, port });
  }
  return { listeners, skipped };
}

/**
 * A report: `@tcp`, `@tcp6`, `@udp`, `@udp6` sections, each a table as /proc prints it. A missing
 * section (a kernel without IPv6) is empty; an unknown marker's lines are skipped and counted.
 */
export function parseReport(text: string): ParsedReport {
  const listeners: Listener[] = [];
  let skipped = 0;
  let table: Table | undefined;
  let lines: string[] = [];
  const flush = () => {
    if (table) {
      const parsed = parseTable(lines.join("\n"), table);
      listeners.push(...parsed.listeners);
      skipped += parsed.skipped;
    } else {
      skipped += lines.filter((l) => l.trim() !== "").length;
    }
    lines = [];
  };
  for (const line of text.split("\n")) {
    const marker = /^@(\w+)\s*$/.exec(line.trim());
    if (marker) {
      flush();
      table = (TABLES as readonly string[]).includes(marker[1]!) ? (marker[1] as Table) : undefined;
      continue;
    }
    lines.push(line);
  }
  flush();
  return { listeners, skipped };
}

/**
 * The shell that produces one report, for a reader or a guest reporter (POSIX sh and awk; busybox
 * has both). Only listening TCP and unconnected UDP lines are sent: a guest with thousands of open
 * connections still reports a few lines.
 */
export const REPORT_SCRIPT =
  "echo @tcp; awk 'NR==1||$4==\"0A\"' /proc/net/tcp; echo @tcp6; awk 'NR==1||$4==\"0A\"' /proc/net/tcp6 2>/dev/null; " +
  "echo @udp; awk 'NR==1||$4==\"07\"' /proc/net/udp; echo @udp6; awk 'NR==1||$4==\"07\"' /proc/net/udp6 2>/dev/null; echo @end";
