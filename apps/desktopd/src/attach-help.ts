/**
 * The exact VMM arguments that plug a VM into each socket desktopd serves, printed at start so
 * nobody has to look the netdev syntax up.
 */
import { formatStreamAddress, type StreamAddress } from "@desktopd/stack";

export interface Attachments {
  qemuListen: StreamAddress[];
  qemuConnect: StreamAddress[];
  vfkit: string[];
}

const NIC = "-device virtio-net-pci,netdev=net0";

export function attachHelp(a: Attachments): string[] {
  const lines: string[] = [];
  for (const addr of a.qemuListen) {
    lines.push(
      "path" in addr
        ? `qemu:  -netdev stream,id=net0,server=off,addr.type=unix,addr.path=${addr.path} ${NIC}`
        : `qemu:  -netdev socket,id=net0,connect=${formatStreamAddress(addr)} ${NIC}`,
    );
  }
  for (const addr of a.qemuConnect) {
    lines.push(
      "path" in addr
        ? `qemu:  -netdev stream,id=net0,server=on,addr.type=unix,addr.path=${addr.path} ${NIC}`
        : `qemu:  -netdev socket,id=net0,listen=${formatStreamAddress(addr)} ${NIC}`,
    );
  }
  for (const path of a.vfkit) {
    lines.push(`vfkit: --device virtio-net,unixSocketPath=${path},mac=5a:94:ef:e4:0c:ee`);
    lines.push(
      `qemu:  -netdev dgram,id=net0,local.type=unix,local.path=/tmp/VM-NAME-net0.sock,remote.type=unix,remote.path=${path} ${NIC}`,
    );
  }
  return lines;
}
