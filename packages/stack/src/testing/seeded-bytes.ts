/**
 * Seeded pseudo-random bytes: AES-256-CTR over zeros with a key derived from the seed.
 * Fast (hundreds of MB/s) and the same stream in the test process, in the host server and
 * in a generator run inside the guest, so both ends can agree on a sha256 without storing data.
 */
import { createCipheriv, createHash } from "node:crypto";

const CHUNK = 64 * 1024;

function cipher(seed: number) {
  const key = createHash("sha256").update(`desktopd-e2e:${seed}`).digest();
  return createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
}

/** Yields `size` seeded bytes in chunks of up to 64 KiB. */
export function* seededChunks(size: number, seed: number): Generator<Buffer> {
  const c = cipher(seed);
  const zero = Buffer.alloc(CHUNK);
  for (let left = size; left > 0; left -= CHUNK) {
    yield c.update(zero.subarray(0, Math.min(CHUNK, left)));
  }
}

/** The sha256 (hex) of `size` seeded bytes. */
export function seededSha256(size: number, seed: number): string {
  const h = createHash("sha256");
  for (const chunk of seededChunks(size, seed)) h.update(chunk);
  return h.digest("hex");
}

/**
 * A self-contained Node program printing `size` seeded bytes to stdout, for use inside a
 * guest: `node --input-type=module -e <program>` (argv: size seed). Must match `seededChunks`.
 */
export const SEEDED_BYTES_PROGRAM = `
import { createCipheriv, createHash } from "node:crypto";
const [size, seed] = process.argv.slice(1).map(Number);
const key = createHash("sha256").update("desktopd-e2e:" + seed).digest();
const c = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
const zero = Buffer.alloc(${CHUNK});
let left = size;
function pump() {
  while (left > 0) {
    const n = Math.min(${CHUNK}, left);
    left -= n;
    if (!process.stdout.write(c.update(zero.subarray(0, n)))) return void process.stdout.once("drain", pump);
  }
  process.stdout.end();
}
pump();
`;

/** Quotes one argument for bash. */
export function shellQuote(arg: string | number): string {
  return `'${String(arg).replaceAll("'", `'\\''`)}'`;
}

/** A guest pipeline that downloads `size` seeded bytes from a host server and prints their sha256. */
export function downloadScript(url: string, size: number, seed: number): string {
  return `curl -sS --fail --max-time 150 ${shellQuote(`${url}/bytes/${size}/${seed}`)} | sha256sum`;
}

/** A guest pipeline that uploads `size` seeded bytes; the server answers "<sha256> <bytes>". */
export function uploadScript(url: string, size: number, seed: number): string {
  return (
    `${shellQuote(process.execPath)} --input-type=module -e ${shellQuote(SEEDED_BYTES_PROGRAM)} ${size} ${seed} | ` +
    `curl -sS --fail --max-time 150 -H 'Expect:' -T - ${shellQuote(`${url}/upload`)}`
  );
}
