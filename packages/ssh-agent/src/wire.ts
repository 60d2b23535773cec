/**
 * The SSH agent protocol (draft-miller-ssh-agent): `uint32 length, byte type, contents`, with
 * SSH's `string` (uint32 length, bytes) inside. Pure parse and emit over buffers; only what the
 * relay reads is parsed — identities answers and sign requests — everything else passes as bytes.
 */
import { createHash } from "node:crypto";
import { AgentProtocolError } from "./errors.js";

export const MessageType = {
  failure: 5,
  success: 6,
  requestIdentities: 11,
  identitiesAnswer: 12,
  signRequest: 13,
  signResponse: 14,
  addIdentity: 17,
  removeIdentity: 18,
  removeAllIdentities: 19,
  addSmartcardKey: 20,
  removeSmartcardKey: 21,
  lock: 22,
  unlock: 23,
  addIdConstrained: 25,
  addSmartcardKeyConstrained: 26,
  extension: 27,
  extensionFailure: 28,
} as const;

/** Largest message either side may send; OpenSSH's own agent caps requests at 256 KiB too. */
export const MAX_MESSAGE_BYTES = 256 * 1024;

/** A message: its type and contents (a view into the bytes read). */
export interface AgentMessage {
  type: number;
  body: Buffer;
}

/**
 * Splits a byte stream into messages. `push` returns the messages now whole; it throws
 * AgentProtocolError on an empty or oversized length, before buffering such a message.
 */
export class MessageReader {
  private buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): AgentMessage[] {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const out: AgentMessage[] = [];
    while (this.buffered.length >= 4) {
      const length = this.buffered.readUInt32BE(0);
      if (length === 0) throw new AgentProtocolError("a message of length 0 (no type)");
      if (length > MAX_MESSAGE_BYTES) {
        throw new AgentProtocolError(`a message of ${length} bytes (at most ${MAX_MESSAGE_BYTES})`);
      }
      if (this.buffered.length < 4 + length) break;
      out.push({ type: this.buffered[4]!, body: this.buffered.subarray(5, 4 + length) });
      this.buffered = this.buffered.subarray(4 + length);
    }
    return out;
  }

  /** Bytes of a message not yet whole. */
  get pending(): number {
    return this.buffered.length;
  }
}

export function encodeMessage(type: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length + 1, 0);
  head[4] = type;
  return Buffer.concat([head, body]);
}

export const FAILURE = encodeMessage(MessageType.failure);

function sshString(value: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(value.length, 0);
  return Buffer.concat([length, value]);
}

/** Reads an SSH `string` at `at`; throws AgentProtocolError when it runs past the buffer. */
function readString(buf: Buffer, at: number, what: string): { value: Buffer; next: number } {
  if (at + 4 > buf.length) throw new AgentProtocolError(`${what}: truncated length`);
  const length = buf.readUInt32BE(at);
  if (at + 4 + length > buf.length) throw new AgentProtocolError(`${what}: ${length} bytes past the message`);
  return { value: buf.subarray(at + 4, at + 4 + length), next: at + 4 + length };
}

export interface Identity {
  /** The public key blob, as the agent gives it. */
  blob: Buffer;
  comment: Buffer;
}

/** SSH_AGENT_IDENTITIES_ANSWER's contents: `uint32 nkeys`, then `string blob, string comment` each. */
export function parseIdentities(body: Buffer): Identity[] {
  if (body.length < 4) throw new AgentProtocolError("identities answer: truncated count");
  const count = body.readUInt32BE(0);
  // Each key takes 8 bytes at least: a count beyond that is a lie, not a reason to loop.
  if (count > (body.length - 4) / 8)
    throw new AgentProtocolError(`identities answer: ${count} keys in ${body.length} bytes`);
  const keys: Identity[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    const blob = readString(body, at, "identities answer key");
    const comment = readString(body, blob.next, "identities answer comment");
    keys.push({ blob: blob.value, comment: comment.value });
    at = comment.next;
  }
  return keys;
}

export function encodeIdentities(keys: readonly Identity[]): Buffer {
  const count = Buffer.alloc(4);
  count.writeUInt32BE(keys.length, 0);
  return encodeMessage(
    MessageType.identitiesAnswer,
    Buffer.concat([count, ...keys.flatMap((k) => [sshString(k.blob), sshString(k.comment)])]),
  );
}

export interface SignRequest {
  blob: Buffer;
  data: Buffer;
  flags: number;
}

/** SSH_AGENTC_SIGN_REQUEST's contents: `string key blob, string data, uint32 flags`. */
export function parseSignRequest(body: Buffer): SignRequest {
  const blob = readString(body, 0, "sign request key");
  const data = readString(body, blob.next, "sign request data");
  if (data.next + 4 > body.length) throw new AgentProtocolError("sign request: truncated flags");
  return { blob: blob.value, data: data.value, flags: body.readUInt32BE(data.next) };
}

/** `SHA256:...` as `ssh-add -l` and `ssh-keygen -lf` print it: unpadded base64 of the blob's SHA-256. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** The key type at the start of a public key blob ("ssh-ed25519", "ssh-rsa"...), or "unknown". */
export function keyType(blob: Buffer): string {
  try {
    const { value } = readString(blob, 0, "key type");
    return /^[\x21-\x7e]{1,64}$/.test(value.toString("latin1")) ? value.toString("latin1") : "unknown";
  } catch {
    return "unknown";
  }
}

/** A fingerprint as a user writes it: `SHA256:` and 43 base64 characters (checked, not computed). */
export function isFingerprint(text: string): boolean {
  return /^SHA256:[A-Za-z0-9+/]{43}$/.test(text);
}
