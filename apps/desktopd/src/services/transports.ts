/**
 * The VM links: qemu stream sockets (listening or connecting), unix datagram sockets for
 * vfkit/krunkit/qemu dgram, and stdio. Each guest that connects becomes a port of the switch.
 */
import {
  connectQemuStream,
  type FrameTransport,
  type Logger,
  listenQemuStream,
  listenUnixDatagram,
  parseStreamAddress,
  RECOMMENDED_DGRAM_QLEN,
  type StreamAddress,
  stdioTransport,
  unixDatagramQueueLimit,
  type VirtualSwitch,
} from "@desktopd/stack";
import { attachHelp } from "../attach-help.js";
import { namesTransportBesidesStdio, type RunConfig } from "../config.js";
import type { LinkLoss } from "../daemon.js";
import { watchLink } from "../link-watch.js";
import type { Service } from "./service.js";

/** Ethernet header and a VLAN tag on top of the MTU: the largest frame a guest may send. */
export const FRAME_OVERHEAD = 18;

export interface TransportsService extends Service {
  readonly qemuListen: StreamAddress[];
  readonly qemuConnect: StreamAddress[];
  /** Settles when the stdio guest, the only one, goes away. */
  readonly loss?: Promise<LinkLoss>;
  /** VMM arguments that attach a VM to each socket served. */
  attachHelp(): string[];
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

export async function startTransports(
  config: RunConfig,
  sw: VirtualSwitch,
  logger?: Logger,
): Promise<TransportsService> {
  const closers: (() => Promise<void>)[] = [];
  let stopping = false;
  const close = async () => {
    stopping = true;
    for (const c of closers.splice(0).reverse()) await c();
  };
  const addPort = (link: FrameTransport) => void sw.addPort(link);
  const maxFrame = config.mtu + FRAME_OVERHEAD;
  const qemuListen: StreamAddress[] = [];
  const qemuConnect: StreamAddress[] = [];
  let loss: Promise<LinkLoss> | undefined;
  try {
    for (const text of config.qemuSocket) {
      const listener = await listenQemuStream(parseStreamAddress(text)!, addPort, { maxFrame });
      closers.push(() => listener.close());
      qemuListen.push(listener.address);
      // qemu's protocol has no authentication: whoever reaches the port joins the guest network.
      const addr = listener.address;
      if ("host" in addr && !isLoopback(addr.host)) {
        logger?.warn(
          { address: `${addr.host}:${addr.port}` },
          "qemu socket open beyond loopback: anyone who reaches it joins the guest network",
        );
      }
    }
    for (const text of config.qemuConnect) {
      const address = parseStreamAddress(text)!;
      const connector = connectQemuStream(address, addPort, { maxFrame });
      closers.push(() => connector.close());
      qemuConnect.push(address);
    }
    for (const path of config.vfkitSocket) {
      const listener = await listenUnixDatagram(path, addPort, { maxFrame });
      closers.push(() => listener.close());
    }
  } catch (error) {
    await close();
    throw error;
  }
  const qlen = config.vfkitSocket.length > 0 ? unixDatagramQueueLimit() : undefined;
  if (qlen !== undefined && qlen < RECOMMENDED_DGRAM_QLEN / 8) {
    logger?.warn(
      { max_dgram_qlen: qlen },
      `net.unix.max_dgram_qlen is ${qlen}: VMs on datagram sockets stall once ${qlen} frames wait; ` +
        `sysctl -w net.unix.max_dgram_qlen=${RECOMMENDED_DGRAM_QLEN} (systemd's default), then restarting desktopd ` +
        "and the VMs (sockets keep the value they were made with), about doubles their throughput",
    );
  }
  if (config.stdio) {
    const watched = watchLink(stdioTransport({ maxFrame }));
    sw.addPort(watched.transport);
    if (namesTransportBesidesStdio(config)) {
      // The other guests carry on: a stdio peer that sent garbage or went away loses its link only.
      void watched.closed.then((error) => {
        if (stopping) return;
        if (error)
          logger?.error({ link: "stdio", err: error.message }, "stdio guest link lost; serving the others");
        else logger?.info({ link: "stdio" }, "stdio guest link ended; serving the others");
      });
    } else {
      // The only guest, spawned with us: its end is the daemon's.
      loss = watched.closed.then((error) => ({ link: "stdio", error, finished: !error }));
    }
  }
  return {
    name: "transports",
    qemuListen,
    qemuConnect,
    ...(loss ? { loss } : {}),
    attachHelp: () => attachHelp({ qemuListen, qemuConnect, vfkit: config.vfkitSocket }),
    status: () => ({
      transports: {
        qemu: [...qemuListen, ...qemuConnect].map((a) => ("path" in a ? a.path : `tcp:${a.host}:${a.port}`)),
        vfkit: config.vfkitSocket,
        stdio: config.stdio,
      },
    }),
    close,
  };
}
