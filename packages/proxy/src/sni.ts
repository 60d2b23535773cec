/**
 * The server name a TLS client asks for, read from its ClientHello (RFC 8446 §4.1.2, the
 * server_name extension of RFC 6066 §3) without decrypting anything: what the transparent proxy
 * tunnels port 443 by. Pure: it reads the bytes a guest sent so far and says whether more are needed.
 */

export type ClientHelloResult =
  /** Not all of the ClientHello is here yet. */
  | { kind: "incomplete" }
  /** A TLS handshake; `serverName` when it carries a usable one (absent: go by address). */
  | { kind: "tls"; serverName?: string }
  /** The bytes are not a TLS handshake record. */
  | { kind: "not-tls" };

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXTENSION_SERVER_NAME = 0x0000;
const NAME_TYPE_HOST = 0x00;
/** A record's plaintext is at most 2^14 bytes (RFC 8446 §5.1). */
const MAX_RECORD = 16_384;
/** Bytes a guest may send before its ClientHello is complete; beyond it the flow goes by address. */
export const MAX_CLIENT_HELLO = 64 * 1024;

const HOSTNAME =
  /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

export function readClientHello(data: Buffer): ClientHelloResult {
  if (data.length === 0) return { kind: "incomplete" };
  if (data[0] !== RECORD_HANDSHAKE) return { kind: "not-tls" };
  // A ClientHello may span records: join their payloads until the handshake message is whole.
  const parts: Buffer[] = [];
  let joined = 0;
  let need = -1;
  for (let at = 0; ; ) {
    if (data.length < at + 5) return { kind: "incomplete" };
    if (data[at] !== RECORD_HANDSHAKE || data[at + 1] !== 3)
      return at === 0 ? { kind: "not-tls" } : { kind: "tls" };
    const length = data.readUInt16BE(at + 3);
    if (length === 0 || length > MAX_RECORD) return at === 0 ? { kind: "not-tls" } : { kind: "tls" };
    if (data.length < at + 5 + length) return { kind: "incomplete" };
    parts.push(data.subarray(at + 5, at + 5 + length));
    joined += length;
    at += 5 + length;
    if (need < 0 && joined >= 4) {
      const head = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return { kind: "tls" };
      need = 4 + head.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO) return { kind: "tls" };
    }
    if (need >= 0 && joined >= need) break;
  }
  const message = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  const serverName = serverNameOf(message.subarray(4, need));
  return serverName === undefined ? { kind: "tls" } : { kind: "tls", serverName };
}

/** The host name in a ClientHello body, or undefined when there is none or it is malformed. */
function serverNameOf(body: Buffer): string | undefined {
  // legacy_version (2), random (32), then session id, cipher suites, compression methods.
  let at = 34;
  if (body.length < at + 1) return undefined;
  at += 1 + body[at]!;
  if (body.length < at + 2) return undefined;
  at += 2 + body.readUInt16BE(at);
  if (body.length < at + 1) return undefined;
  at += 1 + body[at]!;
  if (body.length < at + 2) return undefined;
  const end = Math.min(body.length, at + 2 + body.readUInt16BE(at));
  at += 2;
  while (at + 4 <= end) {
    const type = body.readUInt16BE(at);
    const length = body.readUInt16BE(at + 2);
    at += 4;
    if (at + length > end) return undefined;
    if (type === EXTENSION_SERVER_NAME) return hostNameOf(body.subarray(at, at + length));
    at += length;
  }
  return undefined;
}

function hostNameOf(ext: Buffer): string | undefined {
  if (ext.length < 2) return undefined;
  const end = Math.min(ext.length, 2 + ext.readUInt16BE(0));
  for (let at = 2; at + 3 <= end; ) {
    const type = ext[at]!;
    const length = ext.readUInt16BE(at + 1);
    at += 3;
    if (at + length > end) return undefined;
    if (type === NAME_TYPE_HOST) {
      const name = ext
        .toString("latin1", at, at + length)
        .toLowerCase()
        .replace(/\.$/, "");
      return HOSTNAME.test(name) ? name : undefined;
    }
    at += length;
  }
  return undefined;
}
