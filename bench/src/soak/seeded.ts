/** sha256 of the host server's seeded downloads, computed once per (size, seed): lanes reuse a few. */
import { seededSha256 } from "@desktopd/stack/testing";

const known = new Map<string, string>();

export function seededSha(size: number, seed: number): string {
  const key = `${size}/${seed}`;
  let sha = known.get(key);
  if (sha === undefined) {
    sha = seededSha256(size, seed);
    known.set(key, sha);
  }
  return sha;
}
