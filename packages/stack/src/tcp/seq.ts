/** Sequence-number arithmetic modulo 2^32 (RFC 793 section 3.3). */
export const seqAdd = (a: number, n: number): number => (a + n) >>> 0;
/** Signed distance a - b. */
export const seqDiff = (a: number, b: number): number => (a - b) | 0;
export const seqLt = (a: number, b: number): boolean => ((a - b) | 0) < 0;
export const seqLe = (a: number, b: number): boolean => ((a - b) | 0) <= 0;
export const seqGt = (a: number, b: number): boolean => ((a - b) | 0) > 0;
export const seqGe = (a: number, b: number): boolean => ((a - b) | 0) >= 0;
