/**
 * The exact VMM arguments that plug a VM into each socket desktopd serves, printed at start so
 * nobody has to look the netdev syntax up. Each line carries a MAC address of its own (two VMs
 * with qemu's default MAC would collide on the switch) and, for dgram, a local socket path of
 * its own next to ours.
 */
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { formatStreamAddress, type StreamAddress } from "@desktopd/stack";

export interface Attachments {
  qemuListen: StreamAddress[];
  qemuConnect: StreamAddress[];
  vfkit: string[];
}

/** Injectable so tests see fixed addresses. */
export type RandomBytes = (size: number) => Buffer;

/** A locally administered unicast MAC: the first octet's low bits are 10. */
export function randomMac(random: RandomBytes = randomBytes): string {
  const b = random(6);
  b[0] = (b[0]! & 0xfc) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join(":");
}

export function attachHelp(a: Attachments, random: RandomBytes = randomBytes): string[] {
  const nic = () => `-device virtio-net-pci,netdev=net0,mac=${randomMac(random)}`;
  const lines: string[] = [];
  for (const addr of a.qemuListen) {
    lines.push(
      "path" in addr
        ? `qemu:  -netdev stream,id=net0,server=off,addr.type=unix,addr.path=${addr.path} ${nic()}`
        : `qemu:  -netdev socket,id=net0,connect=${formatStreamAddress(addr)} ${nic()}`,
    );
  }
  for (const addr of a.qemuConnect) {
    lines.push(
      "path" in addr
        ? `qemu:  -netdev stream,id=net0,server=on,addr.type=unix,addr.path=${addr.path} ${nic()}`
        : `qemu:  -netdev socket,id=net0,listen=${formatStreamAddress(addr)} ${nic()}`,
    );
  }
  for (const path of a.vfkit) {
    lines.push(`vfkit: --device virtio-net,unixSocketPath=${path},mac=${randomMac(random)}`);
    const local = join(dirname(path), `vm-${random(3).toString("hex")}.sock`);
    lines.push(
      `qemu:  -netdev dgram,id=net0,local.type=unix,local.path=${local},remote.type=unix,remote.path=${path} ${nic()}`,
    );
  }
  return lines;
}
