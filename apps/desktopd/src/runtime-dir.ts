/**
 * The per-user runtime directory for desktopd's default sockets: $XDG_RUNTIME_DIR/desktopd, else
 * /run/user/UID/desktopd, else TMPDIR/desktopd-UID. Private (0700) and checked to be ours, so
 * another user cannot put a socket where a VM of ours would connect.
 */
import { lstatSync, mkdirSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { InvalidOptionError } from "./errors.js";

export function runtimeDir(env: NodeJS.ProcessEnv = process.env): string {
  const uid = userInfo().uid;
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && ownedBy(xdg, uid)) return join(xdg, "desktopd");
  const run = `/run/user/${uid}`;
  if (ownedBy(run, uid)) return join(run, "desktopd");
  return join(tmpdir(), `desktopd-${uid}`);
}

/**
 * A runtime directory kept by `sudo` belongs to another user, who could swap our subdirectory
 * for a symlink after it was checked: only a directory of our own is a safe parent.
 */
function ownedBy(dir: string, uid: number): boolean {
  try {
    const st = lstatSync(dir);
    return st.isDirectory() && st.uid === uid;
  } catch {
    return false;
  }
}

/** Creates the directory if needed and refuses one that is not a private directory of ours. */
export function ensurePrivateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  const uid = userInfo().uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new InvalidOptionError(
      `runtime directory ${dir} must be a directory owned by uid ${uid} with mode 0700 (remove it, or name sockets with --qemu-socket/--vfkit-socket)`,
    );
  }
  return dir;
}
