/**
 * `runDaemon`: the composition behind `desktopd run` — the stack, a virtual switch, and every
 * guest link named (qemu stream sockets, vfkit/qemu datagram sockets, stdio, a network namespace
 * through a TAP), with optional pcap and guest configuration. Everything except argument
 * parsing, printing and signals, so other tools and tests can embed it.
 */
import { join } from "node:path";
import type { Forwarder } from "@desktopd/portfwd";
import {
  connectQemuStream,
  createStack,
  createSwitch,
  type FrameTransport,
  type Logger,
  listenQemuStream,
  listenUnixDatagram,
  openTap,
  parseStreamAddress,
  RECOMMENDED_DGRAM_QLEN,
  type Stack,
  type StackOptions,
  type StreamAddress,
  stdioTransport,
  type TapTransport,
  unixDatagramQueueLimit,
  type VirtualSwitch,
  withPcap,
} from "@desktopd/stack";
import { attachHelp } from "./attach-help.js";
import {
  namesNoTransport,
  namesTransportBesidesStdio,
  parseRunOptions,
  type RunOptionsInput,
} from "./config.js";
import { EventBus } from "./control/events.js";
import { startControlServer } from "./control/server.js";
import { createGuestDns } from "./dns.js";
import { configureGuest } from "./guest-config.js";
import { watchLink } from "./link-watch.js";
import { checkNetns, checkRoot, checkTun } from "./preflight.js";
import { processStats } from "./process-stats.js";
import {
  firstLease,
  formatPublished,
  leasedAddress,
  type PublishFailure,
  startPublishing,
} from "./publish.js";
import { formatReadyLine, type ReadyInfo } from "./ready.js";
import { installResolvConf, renderResolvConf } from "./resolv-conf.js";
import { ensurePrivateDir, runtimeDir } from "./runtime-dir.js";
import { stackLimits } from "./stack-options.js";

export type { Logger, TapTransport };

/** Ethernet header and a VLAN tag on top of the MTU: the largest frame a guest may send. */
const FRAME_OVERHEAD = 18;

export interface DaemonOptions extends Omit<RunOptionsInput, "logLevel"> {
  /** Receives the daemon's and the stack's logs; none are written without one. */
  logger?: Logger;
  /** Further stack options (DNS servers, search domains, policy...); subnet and MTU come from above. */
  stackOptions?: Omit<StackOptions, "subnet" | "mtu" | "logger">;
  /** Where the default sockets go when no transport is named (default: the per-user runtime directory). */
  runtimeDir?: string;
}

/** A guest link whose loss ends the daemon: the namespace it was started for, or its stdio. */
export interface LinkLoss {
  link: string;
  error?: Error;
  /** The end of stdin: whoever spawned desktopd is done with it, a normal exit. */
  finished?: boolean;
}

export interface DaemonHandle {
  stack: Stack;
  switch: VirtualSwitch;
  /** The TAP device in the guest's namespace, with --netns. */
  tap?: TapTransport;
  ready: ReadyInfo;
  /** `ready` as the line `desktopd run` prints. */
  readyLine: string;
  /** VMM arguments that attach a VM to each socket served. */
  attachHelp: string[];
  /** Published ports: add, remove and list them at runtime. */
  forwarder: Forwarder;
  /** `publish` specs that could not be bound (the others are served). */
  publishFailures: PublishFailure[];
  /** Settles if the namespace's link or stdio goes away by itself. Never rejects. */
  linkClosed: Promise<LinkLoss>;
  /** Stops serving: closes sockets and links, removes the device and the resolv.conf written by `configure`. Idempotent. */
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host.startsWith("127.");
}

export async function runDaemon(options: DaemonOptions): Promise<DaemonHandle> {
  const { logger, stackOptions, runtimeDir: dirOption, ...rest } = options;
  const config = parseRunOptions(rest);
  if (namesNoTransport(config)) {
    const dir = ensurePrivateDir(dirOption ?? runtimeDir());
    config.qemuSocket = [join(dir, "qemu.sock")];
    config.vfkitSocket = [join(dir, "vfkit.sock")];
    config.control ??= join(dir, "control.sock");
  }
  if (config.netns) {
    checkRoot();
    await checkTun();
    await checkNetns(config.netns);
  }

  // Undo steps, run in reverse if setup fails half way or when the daemon closes.
  const undo: (() => Promise<void>)[] = [];
  // Links closed by the unwind are not losses to report.
  let stopping = false;
  const unwind = async () => {
    stopping = true;
    for (const step of undo.reverse()) {
      await step().catch((error: unknown) => logger?.warn({ err: error }, "cleanup step failed"));
    }
    undo.length = 0;
  };

  try {
    // The stack first: it rejects a bad configuration before any socket or device exists.
    // DNS on the gateway: its policy goes into the stack, then it learns the stack's addresses.
    const dns = createGuestDns(config, logger);
    const policy = dns.policy(stackOptions?.policy);
    // Egress rules by name see what the gateway's DNS answered each guest.
    const limits = stackLimits(config, (guest, dst) => dns.names.namesFor(guest, dst), stackOptions);
    const stack = createStack({
      ...stackOptions,
      ...limits,
      policy,
      subnet: config.subnet,
      mtu: config.mtu,
      logger,
    });
    undo.push(() => stack.close());
    const guestDns = dns.bind(stack.config, () => stack.leases());
    undo.push(async () => dns.close());
    const events = new EventBus();
    const sw = createSwitch({
      offload: config.offload,
      onPortChange: (event, port, error) => {
        logger?.info(
          {
            link: port.name,
            macs: port.macs,
            err: error?.message,
            ...(event === "removed" ? { stats: port.stats } : {}),
          },
          `guest link ${event}`,
        );
        events.emit(`link-${event}`, {
          link: port.name,
          macs: port.macs,
          ...(error ? { error: error.message } : {}),
        });
      },
    });
    // pcap sees what passes between the guests and the stack (not guest-to-guest frames).
    stack.attach(config.pcap ? withPcap(sw, config.pcap) : sw);
    const addPort = (link: FrameTransport) => void sw.addPort(link);
    const maxFrame = config.mtu + FRAME_OVERHEAD;
    const losses: Promise<LinkLoss>[] = [];

    const qemuListen: StreamAddress[] = [];
    for (const text of config.qemuSocket) {
      const listener = await listenQemuStream(parseStreamAddress(text)!, addPort, { maxFrame });
      undo.push(() => listener.close());
      qemuListen.push(listener.address);
    }
    const qemuConnect: StreamAddress[] = [];
    for (const text of config.qemuConnect) {
      const address = parseStreamAddress(text)!;
      const connector = connectQemuStream(address, addPort, { maxFrame });
      undo.push(() => connector.close());
      qemuConnect.push(address);
    }
    for (const path of config.vfkitSocket) {
      const listener = await listenUnixDatagram(path, addPort, { maxFrame });
      undo.push(() => listener.close());
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
        void watched.closed.then((error) =>
          stopping
            ? undefined
            : error
              ? logger?.error(
                  { link: "stdio", err: error.message },
                  "stdio guest link lost; serving the others",
                )
              : logger?.info({ link: "stdio" }, "stdio guest link ended; serving the others"),
        );
      } else {
        // The only guest, spawned with us: its end is the daemon's.
        losses.push(watched.closed.then((error) => ({ link: "stdio", error, finished: !error })));
      }
    }

    const net = stack.config;
    let tap: TapTransport | undefined;
    let address: string | undefined;
    if (config.netns) {
      tap = await openTap({
        netns: config.netns,
        ifname: config.ifname,
        mtu: config.mtu,
        offload: config.offload,
      });
      const opened = tap;
      undo.push(() => opened.close());
      const watched = watchLink(tap);
      if (config.configure) {
        // A static lease keeps the DHCP server from handing the address to anyone else and lets
        // the guest's own DHCP client, if it runs later, get the same one.
        stack.addStaticLease(tap.guestMac, net.firstLease);
        address = `${net.firstLease}/${net.prefixLength}`;
      }
      sw.addPort(watched.transport);
      const name = `${tap.ifname} in network namespace "${config.netns}"`;
      losses.push(watched.closed.then((error) => ({ link: name, error })));
      logger?.info(
        { netns: config.netns, ifname: tap.ifname, mac: tap.guestMac },
        "network namespace attached",
      );
      if (config.configure) {
        await configureGuest({
          netns: config.netns,
          ifname: tap.ifname,
          address: net.firstLease,
          prefixLength: net.prefixLength,
          gateway: net.gateway,
          mtu: tap.mtu,
        });
        const content = renderResolvConf({
          netns: config.netns,
          nameservers: net.dnsServers,
          searchDomains: net.searchDomains,
        });
        undo.push(await installResolvConf(config.netns, content));
        logger?.info({ address, gateway: net.gateway, dns: net.dnsServers }, "guest configured");
      }
    }

    // Published ports lead to the namespace's guest, else to the first guest that took a lease.
    const target = tap ? leasedAddress(stack, tap.guestMac) : firstLease(stack);
    const publishing = await startPublishing(config, stack, target, logger);
    events.relay(publishing.forwarder);
    undo.push(() => publishing.close());

    for (const addr of qemuListen) {
      // qemu's protocol has no authentication: whoever reaches the port joins the guest network.
      if ("host" in addr && !isLoopback(addr.host)) {
        logger?.warn(
          { address: `${addr.host}:${addr.port}` },
          "qemu socket open beyond loopback: anyone who reaches it joins the guest network",
        );
      }
    }

    const ready: ReadyInfo = {
      netns: config.netns,
      ifname: tap?.ifname,
      mac: tap?.guestMac,
      gateway: net.gateway,
      host: net.hostAddress,
      address,
      mtu: config.mtu,
      subnet: net.subnet,
      qemu: [...qemuListen, ...qemuConnect].map((a) => ("path" in a ? a.path : `tcp:${a.host}:${a.port}`)),
      vfkit: config.vfkitSocket,
      stdio: config.stdio || undefined,
      published: formatPublished(publishing.published),
    };
    if (config.control) {
      const control = await startControlServer(config.control, {
        forwarder: publishing.forwarder,
        dns: guestDns,
        egress: stack.egress,
        events,
        status: () => ({
          ready,
          links: sw.ports(),
          leases: stack.leases(),
          published: publishing.forwarder.list(),
          counters: stack.counters(),
          dns: guestDns.handler.counters(),
          process: processStats(),
        }),
      });
      undo.push(() => control.close());
      ready.control = control.path;
    }
    let closing: Promise<void> | undefined;
    return {
      stack,
      switch: sw,
      tap,
      forwarder: publishing.forwarder,
      publishFailures: publishing.failed,
      ready,
      readyLine: formatReadyLine(ready),
      attachHelp: attachHelp({ qemuListen, qemuConnect, vfkit: config.vfkitSocket }),
      linkClosed: losses.length > 0 ? Promise.race(losses) : new Promise<LinkLoss>(() => {}),
      close() {
        closing ??= unwind().then(() => logger?.info({}, "stopped"));
        return closing;
      },
    };
  } catch (error) {
    await unwind();
    throw error;
  }
}
