/**
 * The guest's resolver configuration. `ip netns exec NAME` bind-mounts files from
 * /etc/netns/NAME over /etc, so writing /etc/netns/NAME/resolv.conf is how a namespace gets
 * its own DNS settings — the same ones DHCP hands out.
 */
import { mkdir, readFile, rmdir, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GuestConfigError } from "./errors.js";

export const ETC_NETNS_DIR = "/etc/netns";

export function renderResolvConf(o: {
  netns: string;
  nameservers: string[];
  searchDomains: string[];
}): string {
  const lines = [`# Written by desktopd for network namespace ${o.netns}; removed when it exits.`];
  for (const server of o.nameservers) lines.push(`nameserver ${server}`);
  if (o.searchDomains.length > 0) lines.push(`search ${o.searchDomains.join(" ")}`);
  return `${lines.join("\n")}\n`;
}

/**
 * Writes /etc/netns/NAME/resolv.conf and returns how to undo it: a file that was there before
 * is put back, otherwise the file (and the directory, if desktopd created it) is removed.
 */
export async function installResolvConf(
  netns: string,
  content: string,
  etcNetnsDir = ETC_NETNS_DIR,
): Promise<() => Promise<void>> {
  const dir = join(etcNetnsDir, netns);
  const file = join(dir, "resolv.conf");
  try {
    const createdDir = (await mkdir(dir, { recursive: true })) !== undefined;
    const previous = await readFile(file).catch(() => undefined);
    await writeFile(file, content, { mode: 0o644 });
    return async () => {
      if (previous !== undefined) {
        await writeFile(file, previous).catch(() => {});
        return;
      }
      await unlink(file).catch(() => {});
      // Another tool may have put files there meanwhile: then rmdir fails and that is fine.
      if (createdDir) await rmdir(dir).catch(() => {});
    };
  } catch (error) {
    throw new GuestConfigError(`cannot write ${file}: ${(error as Error).message}`);
  }
}
