/**
 * The Internet checksum (RFC 1071). The only per-byte JavaScript on the hot path:
 * summed as 32-bit big-endian words with the carries folded once at the end.
 */
export function sum16(buf: Buffer, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  const even = end - ((end - start) & 1);
  // 4 bytes at a time; a JS number holds the running sum exactly far beyond 64 KiB of input.
  for (; i + 4 <= even; i += 4) {
    sum += (buf[i]! << 8) | buf[i + 1]!;
    sum += (buf[i + 2]! << 8) | buf[i + 3]!;
  }
  for (; i < even; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) sum += buf[i]! << 8;
  return sum;
}

/**
 * `sum16` over consecutive views as if they were one buffer: a view that follows an odd number of
 * bytes starts with the low byte of the word the previous one left open.
 */
export function sum16Views(views: readonly Buffer[], initial = 0): number {
  let sum = initial;
  let odd = false;
  for (const view of views) {
    let start = 0;
    if (odd && view.length > 0) {
      sum += view[0]!;
      start = 1;
      odd = false;
    }
    sum += sum16(view, start, view.length);
    if ((view.length - start) & 1) odd = true;
  }
  return sum;
}

/** Folds a running sum to 16 bits and complements it. */
export function finish(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return ~sum & 0xffff;
}

export function checksum(buf: Buffer, start = 0, end = buf.length): number {
  return finish(sum16(buf, start, end));
}

/** Sum of the IPv4 pseudo-header used by TCP and UDP checksums. */
export function pseudoHeaderSum(src: number, dst: number, protocol: number, length: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + protocol + length;
}

/** The two addresses of an IPv4 pseudo-header, summed (protocol and length are added by the caller). */
export function addressSum4(src: number, dst: number): number {
  return (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
}
