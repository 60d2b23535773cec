/** slirp4netns (libslirp) run as root against a named netns; it creates and configures tap0 there. */

import { netnsPath } from "../netns.js";
import { Daemon } from "../proc.js";
import type { Peer, PeerSession } from "./peer.js";

export const slirp4netns: Peer = {
  name: "slirp4netns",
  addressPlan: "tap0 10.0.2.100/24, gw 10.0.2.2; host loopback = 10.0.2.2 (libslirp default)",
  guestAddress: "10.0.2.100",
  async start(netns, mtu): Promise<PeerSession> {
    const args = [
      "--configure",
      `--mtu=${mtu}`,
      "--ready-fd=3",
      "--netns-type=path",
      netnsPath(netns),
      "tap0",
    ];
    const d = new Daemon("slirp4netns", args, ["ignore", "pipe", "pipe", "pipe"]);
    try {
      await waitReadyFd(d, 10_000);
    } catch (err) {
      await d.stop(1000);
      throw err;
    }
    return { hostAddress: "10.0.2.2", pid: d.pid, stop: () => d.stop() };
  },
};

/** slirp4netns writes "1" to --ready-fd once tap0 is configured. */
function waitReadyFd(d: Daemon, timeoutMs: number): Promise<void> {
  const fd = d.child.stdio[3] as NodeJS.ReadableStream | null;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`slirp4netns: not ready within ${timeoutMs} ms`)),
      timeoutMs,
    );
    fd?.once("data", () => {
      clearTimeout(timer);
      resolve();
    });
    void d.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`slirp4netns exited before ready (${d.describeExit()}: ${d.logTail()})`));
    });
  });
}
