/**
 * The VM guest: the stack's test VM (busybox, qemu TCG) on the daemon's qemu stream socket, with
 * the host's socat added (busybox nc has no UDP). It leases its address with udhcpc, serves a
 * random file with busybox httpd for the published-port traffic, and holds the round script
 * (bench/guest/soak-vm.sh) that drives its own traffic.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bootVm, type TestVm } from "@desktopd/stack/testing";
import { onCleanup } from "../cleanup.js";
import { blobSize, smallBody } from "./netns-guest.js";

export const vmHttpPort = 8080;
/** Where the round script lands in the guest. */
export const vmScript = "/soak.sh";

export interface VmGuest {
  vm: TestVm;
  address: string;
  /** sha256 of the VM's /www/blob (random bytes made in the guest). */
  blobSha: string;
}

export async function startVmGuest(root: string, qemuSocket: string): Promise<VmGuest> {
  const booting = bootVm({
    name: "soak",
    netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${qemuSocket}`,
    extraBinaries: ["/usr/bin/socat"],
    bootTimeoutMs: 120_000,
  });
  // Registered before boot settles: an interrupt during boot still powers qemu off.
  onCleanup("VM", async () => (await booting.catch(() => null))?.close());
  const vm = await booting;
  await vm.sh("udhcpc -i eth0 -q -n -t 10", 90_000);
  const address = /inet (\d+\.\d+\.\d+\.\d+)\//.exec(await vm.sh("ip -4 -o addr show eth0"))?.[1];
  if (!address) throw new Error(`VM: no address after udhcpc\n${vm.consoleTail()}`);
  await installScript(vm, join(root, "bench/guest/soak-vm.sh"));
  await vm.sh(
    `mkdir -p /www && head -c ${blobSize} /dev/urandom > /www/blob && printf '${smallBody.trim()}\\n' > /www/small`,
  );
  const blobSha = (await vm.sh("sha256sum /www/blob")).trim().split(/\s+/)[0]!;
  await vm.sh(`httpd -p ${vmHttpPort} -h /www`);
  return { vm, address, blobSha };
}

/** The console takes one line at a time: the script goes over in base64 pieces. */
async function installScript(vm: TestVm, path: string): Promise<void> {
  const b64 = readFileSync(path).toString("base64");
  await vm.sh(": > /tmp/soak.b64");
  for (let i = 0; i < b64.length; i += 512) await vm.sh(`echo '${b64.slice(i, i + 512)}' >> /tmp/soak.b64`);
  await vm.sh(`base64 -d /tmp/soak.b64 > ${vmScript} && chmod +x ${vmScript}`);
}
