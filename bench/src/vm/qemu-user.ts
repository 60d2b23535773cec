/**
 * qemu's own user-mode networking (libslirp inside the qemu process): no process of its own, so
 * no RSS figure. qemu 7.2 has no MTU option for it: the link is always 1500.
 */
import type { VmPeer, VmPeerSession } from "./peer.js";

export const qemuUser: VmPeer = {
  name: "qemu-user",
  addressPlan: "DHCP 10.0.2.15/24, gw 10.0.2.2; host loopback = 10.0.2.2 (libslirp default)",
  fixedMtu: 1500,
  async start(): Promise<VmPeerSession> {
    return { netdev: "user,id=n0", hostAddress: "10.0.2.2", stop: async () => {} };
  },
};
