/** Byte arbitraries every package's fuzz tests use. */
import fc from "fast-check";

export const bytes = (maxLength: number, minLength = 0): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength, maxLength }).map((a) => Buffer.from(a));

/**
 * Copies of `base` with a few bytes overwritten, then maybe cut short or extended: input close
 * enough to valid that a parser gets past its first checks.
 */
export function mutated(base: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc
    .record({
      base,
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 0xff })), { maxLength: 6 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      tail: bytes(16),
    })
    .map(({ base, edits, cut, tail }) => {
      const out = Buffer.from(base);
      for (const [at, v] of edits) if (out.length > 0) out[at % out.length] = v;
      if (cut !== undefined) return Buffer.from(out.subarray(0, cut % (out.length + 1)));
      return Buffer.concat([out, tail]);
    });
}
