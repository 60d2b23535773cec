import { desktopdDgram, desktopdStream } from "./desktopd.js";
import { passt } from "./passt.js";
import type { VmPeer, VmPeerName } from "./peer.js";
import { qemuUser } from "./qemu-user.js";

export const vmPeers: Record<VmPeerName, VmPeer> = {
  "desktopd-stream": desktopdStream,
  "desktopd-dgram": desktopdDgram,
  passt,
  "qemu-user": qemuUser,
};
export { type VmPeer, type VmPeerName, vmPeerNames } from "./peer.js";
