import { desktopd } from "./desktopd.js";
import { pasta } from "./pasta.js";
import type { Peer, PeerName } from "./peer.js";
import { slirp4netns } from "./slirp4netns.js";

export const peers: Record<PeerName, Peer> = { desktopd, slirp4netns, pasta };
export { type Peer, type PeerName, type PeerSession, type PortForward, peerNames } from "./peer.js";
