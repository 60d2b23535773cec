/**
 * Segment data as the send path carries it: one view, or consecutive views when a segment spans
 * several of the application's buffers. Kept as views so a link that writes with writev never
 * copies the bytes; only a link that needs one contiguous frame joins them.
 */
export type Payload = Buffer | readonly Buffer[];

export function payloadLength(payload: Payload): number {
  if (Buffer.isBuffer(payload)) return payload.length;
  let total = 0;
  for (const part of payload) total += part.length;
  return total;
}

/** Copies `payload` into `target` at `offset`; returns the bytes copied. */
export function copyPayload(payload: Payload, target: Buffer, offset: number): number {
  if (Buffer.isBuffer(payload)) return payload.copy(target, offset);
  let at = offset;
  for (const part of payload) at += part.copy(target, at);
  return at - offset;
}

/** The payload as one Buffer (a copy only when it has several parts). */
export function joinPayload(payload: Payload): Buffer {
  return Buffer.isBuffer(payload) ? payload : Buffer.concat(payload as Buffer[]);
}
