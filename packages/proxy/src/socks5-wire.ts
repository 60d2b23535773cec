/**
 * SOCKS5 server messages (RFC 1928; username/password, RFC 1929): pure parse and emit over
 * buffers. Each parser says how many bytes it used, or that more are needed.
 */

export const SOCKS_VERSION = 0x05;
export const AUTH_VERSION = 0x01;

export const Method = { none: 0x00, password: 0x02, noneAcceptable: 0xff } as const;
export const Command = { connect: 0x01, bind: 0x02, udpAssociate: 0x03 } as const;
const AddressType = { ipv4: 0x01, domain: 0x03, ipv6: 0x04 } as const;

/** RFC 1928 §6 reply codes. */
export const Reply = {
  succeeded: 0x00,
  generalFailure: 0x01,
  notAllowed: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  connectionRefused: 0x05,
  ttlExpired: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

export type Parsed<T> = { more: true } | { error: string } | { value: T; used: number };

const MORE = { more: true } as const;

/** The greeting: version and the authentication methods the client offers. */
export function parseGreeting(data: Buffer): Parsed<{ methods: number[] }> {
  if (data.length < 2) return MORE;
  if (data[0] !== SOCKS_VERSION) return { error: `not SOCKS5 (version byte ${data[0]})` };
  const count = data[1]!;
  if (count === 0) return { error: "no authentication methods offered" };
  if (data.length < 2 + count) return MORE;
  return { value: { methods: [...data.subarray(2, 2 + count)] }, used: 2 + count };
}

export function emitMethodChoice(method: number): Buffer {
  return Buffer.from([SOCKS_VERSION, method]);
}

/** RFC 1929's username/password request. */
export function parsePasswordAuth(data: Buffer): Parsed<{ username: string; password: string }> {
  if (data.length < 2) return MORE;
  if (data[0] !== AUTH_VERSION) return { error: `not RFC 1929 (version byte ${data[0]})` };
  const ulen = data[1]!;
  if (data.length < 3 + ulen) return MORE;
  const plen = data[2 + ulen]!;
  if (data.length < 3 + ulen + plen) return MORE;
  return {
    value: {
      username: data.toString("utf8", 2, 2 + ulen),
      password: data.toString("utf8", 3 + ulen, 3 + ulen + plen),
    },
    used: 3 + ulen + plen,
  };
}

export function emitAuthResult(ok: boolean): Buffer {
  return Buffer.from([AUTH_VERSION, ok ? 0x00 : 0x01]);
}

export interface SocksRequest {
  command: number;
  /** An address as text, or a domain name as sent. */
  host: string;
  kind: "ipv4" | "ipv6" | "domain";
  port: number;
}

/** The request; an unknown address type is `{ error }` with `reply` set for the answer. */
export function parseRequest(data: Buffer): Parsed<SocksRequest> | { error: string; reply: number } {
  if (data.length < 5) return MORE;
  if (data[0] !== SOCKS_VERSION) return { error: `not SOCKS5 (version byte ${data[0]})` };
  const command = data[1]!;
  const type = data[3]!;
  let host: string;
  let kind: SocksRequest["kind"];
  let at: number;
  if (type === AddressType.ipv4) {
    if (data.length < 10) return MORE;
    host = [...data.subarray(4, 8)].join(".");
    kind = "ipv4";
    at = 8;
  } else if (type === AddressType.ipv6) {
    if (data.length < 22) return MORE;
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(data.readUInt16BE(4 + i * 2).toString(16));
    host = groups.join(":");
    kind = "ipv6";
    at = 20;
  } else if (type === AddressType.domain) {
    const length = data[4]!;
    if (length === 0) return { error: "empty domain name", reply: Reply.generalFailure };
    if (data.length < 5 + length + 2) return MORE;
    host = data.toString("latin1", 5, 5 + length);
    kind = "domain";
    at = 5 + length;
  } else {
    return { error: `address type ${type} is not SOCKS5's`, reply: Reply.addressTypeNotSupported };
  }
  return { value: { command, host, kind, port: data.readUInt16BE(at) }, used: at + 2 };
}

/** The reply to a request; the bound address is 0.0.0.0:0 (clients of CONNECT ignore it). */
export function emitReply(reply: number): Buffer {
  return Buffer.from([SOCKS_VERSION, reply, 0x00, AddressType.ipv4, 0, 0, 0, 0, 0, 0]);
}
