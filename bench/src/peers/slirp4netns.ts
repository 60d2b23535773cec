/**
 * slirp4netns (libslirp) run as root against a named netns; it creates and configures tap0 there.
 * With `--enable-ipv6` the guest also takes an address in fd00::/64 by SLAAC from libslirp's
 * router advertisements, and fd00::2 leads to the host's ::1 as 10.0.2.2 leads to 127.0.0.1.
 * Host → guest forwards go through its API socket (`add_hostfwd`).
 */

import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { netnsPath } from "../netns.js";
import { Daemon } from "../proc.js";
import type { Peer, PeerSession, PortForward } from "./peer.js";

export const slirp4netns: Peer = {
  name: "slirp4netns",
  addressPlan:
    "tap0 10.0.2.100/24, gw 10.0.2.2; host loopback = 10.0.2.2 (libslirp default); IPv6 SLAAC in fd00::/64, gw fe80::2; host loopback (::1) = fd00::2",
  guestAddress: "10.0.2.100",
  async start(netns, mtu, opts): Promise<PeerSession> {
    const apiSocket = join(tmpdir(), `${netns}.slirp4netns.sock`);
    const args = [
      "--configure",
      `--mtu=${mtu}`,
      "--enable-ipv6",
      "--ready-fd=3",
      `--api-socket=${apiSocket}`,
      "--netns-type=path",
      netnsPath(netns),
      "tap0",
    ];
    const d = new Daemon("slirp4netns", args, ["ignore", "pipe", "pipe", "pipe"]);
    try {
      await waitReadyFd(d, 10_000);
      for (const f of opts.forwards) await addHostfwd(apiSocket, f);
    } catch (err) {
      await d.stop(1000);
      throw err;
    }
    return { hostAddress: { 4: "10.0.2.2", 6: "fd00::2" }, pid: d.pid, stop: () => d.stop() };
  },
};

/** One `add_hostfwd` request on the API socket; rejects with the error slirp4netns answers. */
function addHostfwd(path: string, f: PortForward): Promise<void> {
  const request = {
    execute: "add_hostfwd",
    arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: f.hostPort, guest_port: f.guestPort },
  };
  return new Promise((resolve, reject) => {
    const s = net.connect(path);
    let answer = "";
    s.setTimeout(5000, () => s.destroy(new Error("slirp4netns API: no answer within 5 s")));
    s.on("connect", () => s.end(JSON.stringify(request)));
    s.on("data", (b: Buffer) => {
      answer += b.toString();
    });
    s.on("error", reject);
    s.on("close", () => {
      try {
        const parsed = JSON.parse(answer) as { return?: unknown; error?: { desc?: string } };
        if (parsed.error) reject(new Error(`slirp4netns add_hostfwd: ${parsed.error.desc ?? answer}`));
        else resolve();
      } catch {
        reject(new Error(`slirp4netns add_hostfwd: unreadable answer ${JSON.stringify(answer)}`));
      }
    });
  });
}

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
