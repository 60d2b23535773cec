import { WireError } from "../errors.js";
import { ipv4ToString, macToString } from "./address.js";

/** BOOTP/DHCPv4 messages (RFC 2131) and the options this stack speaks (RFC 2132, 3397, 3396). */

export const DHCP_SERVER_PORT = 67;
export const DHCP_CLIENT_PORT = 68;

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;

export const DHCPDISCOVER = 1;
export const DHCPOFFER = 2;
export const DHCPREQUEST = 3;
export const DHCPDECLINE = 4;
export const DHCPACK = 5;
export const DHCPNAK = 6;
export const DHCPRELEASE = 7;
export const DHCPINFORM = 8;

export const OPT_PAD = 0;
export const OPT_SUBNET_MASK = 1;
export const OPT_ROUTER = 3;
export const OPT_DNS_SERVERS = 6;
export const OPT_HOSTNAME = 12;
export const OPT_DOMAIN_NAME = 15;
export const OPT_MTU = 26;
export const OPT_BROADCAST = 28;
export const OPT_REQUESTED_IP = 50;
export const OPT_LEASE_TIME = 51;
export const OPT_OVERLOAD = 52;
export const OPT_MESSAGE_TYPE = 53;
export const OPT_SERVER_ID = 54;
export const OPT_PARAMETER_LIST = 55;
export const OPT_MESSAGE = 56;
export const OPT_MAX_MESSAGE_SIZE = 57;
export const OPT_RENEWAL_TIME = 58;
export const OPT_REBINDING_TIME = 59;
export const OPT_CLIENT_ID = 61;
export const OPT_DOMAIN_SEARCH = 119;
export const OPT_END = 255;

// Fixed BOOTP header layout.
const OP = 0;
const HTYPE = 1;
const HLEN = 2;
const XID = 4;
const SECS = 8;
const FLAGS = 10;
const CIADDR = 12;
const YIADDR = 16;
const SIADDR = 20;
const GIADDR = 24;
const CHADDR = 28;
const SNAME = 44;
const FILE = 108;
const MAGIC = 236;
const OPTIONS = 240;
const SNAME_LEN = 64;
const FILE_LEN = 128;
const MAGIC_COOKIE = 0x63825363;
const FLAG_BROADCAST = 0x8000;
const HTYPE_ETHERNET = 1;
/** RFC 1542: relays and old clients drop BOOTP messages shorter than this. */
export const BOOTP_MIN_LEN = 300;
/** RFC 2131: every client accepts a 576-byte IP datagram, i.e. 548 bytes of DHCP. */
export const DHCP_MIN_MAX_MESSAGE = 576;

export interface DhcpMessage {
  op: number;
  xid: number;
  secs: number;
  broadcast: boolean;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** The client's MAC: a 6-byte view into the parsed buffer. */
  chaddr: Buffer;
  /** Option 53; undefined for plain BOOTP. */
  messageType?: number;
  /**
   * All options by code, raw values. Values are views into the parsed buffer, except an option
   * split into several instances (RFC 3396), whose parts are concatenated into a copy.
   * Option overload (52) is resolved: options from `file` and `sname` are merged in.
   */
  options: Map<number, Buffer>;
}

/**
 * Parses a DHCP message (the UDP payload). Throws WireError("dhcp", reason) with reason
 * "truncated" (short header, option past the end, or no End option), "bad-magic",
 * "not-ethernet" (hardware type/length other than Ethernet's), or "bad-option".
 */
export function parseDhcp(buf: Buffer): DhcpMessage {
  if (buf.length < OPTIONS) throw new WireError("dhcp", "truncated");
  if (buf.readUInt32BE(MAGIC) !== MAGIC_COOKIE) throw new WireError("dhcp", "bad-magic");
  if (buf[HTYPE] !== HTYPE_ETHERNET || buf[HLEN] !== 6) throw new WireError("dhcp", "not-ethernet");
  const options = new Map<number, Buffer>();
  // The options field must carry an End option: without it a truncated message would parse.
  readOptions(buf, OPTIONS, buf.length, options, true);
  const overload = options.get(OPT_OVERLOAD);
  if (overload !== undefined) {
    if (overload.length !== 1 || overload[0]! < 1 || overload[0]! > 3)
      throw new WireError("dhcp", "bad-option");
    // RFC 2131 4.1: `file` is read before `sname`.
    if (overload[0]! & 1) readOptions(buf, FILE, FILE + FILE_LEN, options, false);
    if (overload[0]! & 2) readOptions(buf, SNAME, SNAME + SNAME_LEN, options, false);
  }
  const type = options.get(OPT_MESSAGE_TYPE);
  if (type !== undefined && type.length !== 1) throw new WireError("dhcp", "bad-option");
  return {
    op: buf[OP]!,
    xid: buf.readUInt32BE(XID),
    secs: buf.readUInt16BE(SECS),
    broadcast: (buf.readUInt16BE(FLAGS) & FLAG_BROADCAST) !== 0,
    ciaddr: buf.readUInt32BE(CIADDR),
    yiaddr: buf.readUInt32BE(YIADDR),
    siaddr: buf.readUInt32BE(SIADDR),
    giaddr: buf.readUInt32BE(GIADDR),
    chaddr: buf.subarray(CHADDR, CHADDR + 6),
    messageType: type?.[0],
    options,
  };
}

function readOptions(
  buf: Buffer,
  start: number,
  end: number,
  into: Map<number, Buffer>,
  needEnd: boolean,
): void {
  let i = start;
  while (i < end) {
    const code = buf[i]!;
    if (code === OPT_END) return;
    if (code === OPT_PAD) {
      i++;
      continue;
    }
    if (i + 2 > end || i + 2 + buf[i + 1]! > end) throw new WireError("dhcp", "truncated");
    const value = buf.subarray(i + 2, i + 2 + buf[i + 1]!);
    const earlier = into.get(code);
    // RFC 3396: repeated instances of an option are one long option.
    into.set(code, earlier === undefined ? value : Buffer.concat([earlier, value]));
    i += 2 + value.length;
  }
  if (needEnd) throw new WireError("dhcp", "truncated");
}

/** Fields of a message to build. Options are written in the order listed here. */
export interface DhcpReplyFields {
  /** BOOTREPLY (2) unless set; tests build requests with BOOTREQUEST (1). */
  op?: number;
  messageType: number;
  xid: number;
  secs?: number;
  broadcast?: boolean;
  ciaddr?: number;
  yiaddr?: number;
  siaddr?: number;
  giaddr?: number;
  /** Client MAC, 6 bytes. */
  chaddr: Buffer;
  serverId?: number;
  leaseTimeSeconds?: number;
  renewalSeconds?: number;
  rebindingSeconds?: number;
  subnetMask?: number;
  routers?: number[];
  dnsServers?: number[];
  /** Option 15; defaults to the first search domain. */
  domainName?: string;
  /** Option 119 (RFC 3397). */
  searchDomains?: string[];
  mtu?: number;
  hostname?: string;
  broadcastAddress?: number;
  /** Option 56, a human-readable reason (sent with NAKs). */
  message?: string;
  /** Further options written verbatim after the typed ones. */
  extraOptions?: [code: number, value: Buffer][];
}

/** Builds a DHCP message (UDP payload), zero-padded to the BOOTP minimum of 300 bytes. */
export function emitDhcp(msg: DhcpReplyFields): Buffer {
  const opts: [number, Buffer][] = [[OPT_MESSAGE_TYPE, Buffer.of(msg.messageType)]];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v >>> 0);
    return b;
  };
  const ips = (list: number[]) => Buffer.concat(list.map(u32));
  if (msg.serverId !== undefined) opts.push([OPT_SERVER_ID, u32(msg.serverId)]);
  if (msg.leaseTimeSeconds !== undefined) opts.push([OPT_LEASE_TIME, u32(msg.leaseTimeSeconds)]);
  if (msg.renewalSeconds !== undefined) opts.push([OPT_RENEWAL_TIME, u32(msg.renewalSeconds)]);
  if (msg.rebindingSeconds !== undefined) opts.push([OPT_REBINDING_TIME, u32(msg.rebindingSeconds)]);
  if (msg.subnetMask !== undefined) opts.push([OPT_SUBNET_MASK, u32(msg.subnetMask)]);
  if (msg.broadcastAddress !== undefined) opts.push([OPT_BROADCAST, u32(msg.broadcastAddress)]);
  if (msg.routers?.length) opts.push([OPT_ROUTER, ips(msg.routers)]);
  if (msg.dnsServers?.length) opts.push([OPT_DNS_SERVERS, ips(msg.dnsServers)]);
  const domainName = msg.domainName ?? msg.searchDomains?.[0];
  if (domainName) opts.push([OPT_DOMAIN_NAME, Buffer.from(stripDot(domainName), "ascii")]);
  if (msg.searchDomains?.length) opts.push([OPT_DOMAIN_SEARCH, encodeDomainSearch(msg.searchDomains)]);
  if (msg.mtu !== undefined) {
    const b = Buffer.alloc(2);
    b.writeUInt16BE(msg.mtu);
    opts.push([OPT_MTU, b]);
  }
  if (msg.hostname) opts.push([OPT_HOSTNAME, Buffer.from(msg.hostname, "utf8")]);
  if (msg.message) opts.push([OPT_MESSAGE, Buffer.from(msg.message, "utf8")]);
  if (msg.extraOptions) opts.push(...msg.extraOptions);

  // An option longer than 255 bytes goes out as several instances (RFC 3396).
  let optLen = 1;
  for (const [, v] of opts) optLen += v.length + 2 * Math.max(1, Math.ceil(v.length / 255));
  const buf = Buffer.alloc(Math.max(BOOTP_MIN_LEN, OPTIONS + optLen));
  buf[OP] = msg.op ?? BOOTREPLY;
  buf[HTYPE] = HTYPE_ETHERNET;
  buf[HLEN] = 6;
  buf.writeUInt32BE(msg.xid >>> 0, XID);
  buf.writeUInt16BE(msg.secs ?? 0, SECS);
  buf.writeUInt16BE(msg.broadcast ? FLAG_BROADCAST : 0, FLAGS);
  buf.writeUInt32BE((msg.ciaddr ?? 0) >>> 0, CIADDR);
  buf.writeUInt32BE((msg.yiaddr ?? 0) >>> 0, YIADDR);
  buf.writeUInt32BE((msg.siaddr ?? 0) >>> 0, SIADDR);
  buf.writeUInt32BE((msg.giaddr ?? 0) >>> 0, GIADDR);
  msg.chaddr.copy(buf, CHADDR, 0, 6);
  buf.writeUInt32BE(MAGIC_COOKIE, MAGIC);
  let o = OPTIONS;
  for (const [code, value] of opts) {
    let at = 0;
    do {
      const n = Math.min(255, value.length - at);
      buf[o] = code;
      buf[o + 1] = n;
      value.copy(buf, o + 2, at, at + n);
      o += 2 + n;
      at += n;
    } while (at < value.length);
  }
  buf[o] = OPT_END;
  return buf;
}

function stripDot(name: string): string {
  return name.endsWith(".") ? name.slice(0, -1) : name;
}

/**
 * RFC 3397 domain search list in DNS label form, uncompressed (compression is optional).
 * Throws WireError("dhcp", "bad-domain") for an empty label, a label over 63 bytes or a
 * name over 255 bytes.
 */
export function encodeDomainSearch(domains: string[]): Buffer {
  const parts: Buffer[] = [];
  for (const domain of domains) {
    const labels = stripDot(domain).split(".");
    let nameLen = 1;
    for (const label of labels) {
      const bytes = Buffer.from(label, "ascii");
      if (bytes.length === 0 || bytes.length > 63) throw new WireError("dhcp", "bad-domain");
      parts.push(Buffer.of(bytes.length), bytes);
      nameLen += bytes.length + 1;
    }
    if (nameLen > 255) throw new WireError("dhcp", "bad-domain");
    parts.push(Buffer.of(0));
  }
  return Buffer.concat(parts);
}

/** Decodes an RFC 3397 search list, following compression pointers within the option. */
export function decodeDomainSearch(value: Buffer): string[] {
  const names: string[] = [];
  let i = 0;
  while (i < value.length) {
    const labels: string[] = [];
    let at = i;
    let jumps = 0;
    let next = -1;
    for (;;) {
      if (at >= value.length) throw new WireError("dhcp", "bad-option");
      const len = value[at]!;
      if (len === 0) {
        if (next < 0) next = at + 1;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        if (at + 1 >= value.length || ++jumps > 64) throw new WireError("dhcp", "bad-option");
        if (next < 0) next = at + 2;
        at = ((len & 0x3f) << 8) | value[at + 1]!;
        continue;
      }
      if (len > 63 || at + 1 + len > value.length) throw new WireError("dhcp", "bad-option");
      labels.push(value.toString("ascii", at + 1, at + 1 + len));
      at += 1 + len;
    }
    names.push(labels.join("."));
    i = next;
  }
  return names;
}

// Typed readers. Each returns undefined when the option is absent or has the wrong length.

export function optionU8(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v?.length === 1 ? v[0] : undefined;
}

export function optionU16(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v?.length === 2 ? v.readUInt16BE(0) : undefined;
}

/** A 32-bit value: a duration in seconds or one IPv4 address. */
export function optionU32(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v?.length === 4 ? v.readUInt32BE(0) : undefined;
}

export function optionIpv4List(m: DhcpMessage, code: number): number[] | undefined {
  const v = m.options.get(code);
  if (v === undefined || v.length === 0 || v.length % 4 !== 0) return undefined;
  const out: number[] = [];
  for (let i = 0; i < v.length; i += 4) out.push(v.readUInt32BE(i));
  return out;
}

/** A text option; trailing NULs (sent by some clients) are dropped. */
export function optionString(m: DhcpMessage, code: number): string | undefined {
  const v = m.options.get(code);
  if (v === undefined) return undefined;
  let end = v.length;
  while (end > 0 && v[end - 1] === 0) end--;
  return end === 0 ? undefined : v.toString("utf8", 0, end);
}

export const requestedIp = (m: DhcpMessage): number | undefined => optionU32(m, OPT_REQUESTED_IP);
export const serverIdentifier = (m: DhcpMessage): number | undefined => optionU32(m, OPT_SERVER_ID);
export const requestedHostname = (m: DhcpMessage): string | undefined => optionString(m, OPT_HOSTNAME);
export const clientIdentifier = (m: DhcpMessage): Buffer | undefined => m.options.get(OPT_CLIENT_ID);
export const maxMessageSize = (m: DhcpMessage): number | undefined => optionU16(m, OPT_MAX_MESSAGE_SIZE);

/** Option codes the client asked for (55), in its order. */
export function parameterRequestList(m: DhcpMessage): number[] {
  return Array.from(m.options.get(OPT_PARAMETER_LIST) ?? []);
}

const TYPE_NAMES = ["", "DISCOVER", "OFFER", "REQUEST", "DECLINE", "ACK", "NAK", "RELEASE", "INFORM"];

export function dhcpTypeName(type: number | undefined): string {
  if (type === undefined) return "BOOTP";
  return TYPE_NAMES[type] || `type-${type}`;
}

export function formatDhcp(m: DhcpMessage): string {
  const parts = [`DHCP ${dhcpTypeName(m.messageType)}`, `xid=0x${m.xid.toString(16).padStart(8, "0")}`];
  parts.push(`chaddr=${macToString(m.chaddr)}`);
  for (const [name, ip] of [
    ["ciaddr", m.ciaddr],
    ["yiaddr", m.yiaddr],
    ["giaddr", m.giaddr],
    ["req", requestedIp(m)],
    ["server", serverIdentifier(m)],
  ] as const) {
    if (ip) parts.push(`${name}=${ipv4ToString(ip)}`);
  }
  const lease = optionU32(m, OPT_LEASE_TIME);
  if (lease !== undefined) parts.push(`lease=${lease}s`);
  const host = requestedHostname(m);
  if (host !== undefined) parts.push(`host=${JSON.stringify(host)}`);
  if (m.broadcast) parts.push("bcast");
  return parts.join(" ");
}
