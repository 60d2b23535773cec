/**
 * Malformed-input checks shared by the codec tests: a parser given hostile bytes must either
 * throw a WireError (never a RangeError or TypeError) or return views that stay inside its input.
 */

import { SeededRandom } from "@desktopd/core";
import { expect } from "vitest";
import { WireError } from "../../src/errors.js";

/** Parses `input`; returns the WireError reason, or "ok" after checking the result stays in bounds. */
export function parseOrReason(parse: (input: Buffer) => unknown, input: Buffer): string {
  let result: unknown;
  try {
    result = parse(input);
  } catch (error) {
    if (!WireError.isInstance(error)) throw error;
    return error.reason;
  }
  expectWithin(result, input);
  return "ok";
}

/** Every Buffer in `value` lies inside `input` or is freshly allocated; every number is finite. */
function expectWithin(value: unknown, input: Buffer): void {
  if (Buffer.isBuffer(value)) {
    if (value.buffer === input.buffer) {
      expect(value.byteOffset).toBeGreaterThanOrEqual(input.byteOffset);
      expect(value.byteOffset + value.length).toBeLessThanOrEqual(input.byteOffset + input.length);
    }
  } else if (typeof value === "number") {
    expect(Number.isFinite(value)).toBe(true);
  } else if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) expectWithin(v, input);
  }
}

/**
 * Feeds every proper prefix of `frame` to `parse`, each copied into a buffer of exactly that
 * length so that nothing past the cut is readable. Returns the reasons seen, by prefix length.
 */
export function truncations(parse: (input: Buffer) => unknown, frame: Buffer): string[] {
  const reasons: string[] = [];
  for (let n = 0; n < frame.length; n++) {
    // Buffer.alloc never hands out a slice of the shared pool, so past the cut there is nothing.
    const prefix = Buffer.alloc(n);
    frame.copy(prefix, 0, 0, n);
    reasons.push(parseOrReason(parse, prefix));
  }
  return reasons;
}

/** Seeded random buffers of lengths 0..maxLength. */
export function* randomBuffers(seed: number, count: number, maxLength: number): Generator<Buffer> {
  const random = new SeededRandom(seed);
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(random.u32() % (maxLength + 1));
    for (let j = 0; j < b.length; j++) b[j] = random.u32() & 0xff;
    yield b;
  }
}

/** Copies of `frame` with one random byte flipped to a random other value, `count` times. */
export function* mutations(seed: number, count: number, frame: Buffer): Generator<Buffer> {
  const random = new SeededRandom(seed);
  for (let i = 0; i < count; i++) {
    const b = Buffer.from(frame);
    const at = random.u32() % b.length;
    b[at] = b[at]! ^ (1 + (random.u32() % 255));
    yield b;
  }
}
