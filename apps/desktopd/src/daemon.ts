/**
 * `runDaemon`: the composition of the stack, a TAP in the guest's namespace, optional pcap and
 * guest configuration — everything `desktopd run` does except argument parsing, printing and
 * signals, so other tools and tests can embed it.
 */
import {
  createStack,
  type Logger,
  openTap,
  type Stack,
  type StackOptions,
  type TapTransport,
  withPcap,
} from "@desktopd/stack";
import { parseRunOptions, type RunOptionsInput } from "./config.js";
import { createGuestDns } from "./dns.js";
import { configureGuest } from "./guest-config.js";
import { watchLink } from "./link-watch.js";
import { checkNetns, checkRoot, checkTun } from "./preflight.js";
import { formatReadyLine, type ReadyInfo } from "./ready.js";
import { installResolvConf, renderResolvConf } from "./resolv-conf.js";

export type { Logger, TapTransport };

export interface DaemonOptions extends Omit<RunOptionsInput, "logLevel"> {
  /** Receives the daemon's and the stack's logs; none are written without one. */
  logger?: Logger;
  /** Further stack options (DNS servers, search domains, policy...); subnet and MTU come from above. */
  stackOptions?: Omit<StackOptions, "subnet" | "mtu" | "logger">;
}

export interface DaemonHandle {
  stack: Stack;
  /** The TAP device in the guest's namespace (undecorated: pcap wraps it on the stack's side). */
  transport: TapTransport;
  ready: ReadyInfo;
  /** `ready` as the line `desktopd run` prints. */
  readyLine: string;
  /** Settles if the guest's link goes away by itself (device or namespace deleted). Never rejects. */
  linkClosed: Promise<Error | undefined>;
  /** Detaches the guest: removes the device, the resolv.conf written by `configure`, stops the stack. Idempotent. */
  close(): Promise<void>;
}

export async function runDaemon(options: DaemonOptions): Promise<DaemonHandle> {
  const { logger, stackOptions, ...rest } = options;
  const config = parseRunOptions(rest);
  checkRoot();
  await checkTun();
  await checkNetns(config.netns);

  // Undo steps, run in reverse if setup fails half way or when the daemon closes.
  const undo: (() => Promise<void>)[] = [];
  const unwind = async () => {
    for (const step of undo.reverse()) {
      await step().catch((error: unknown) => logger?.warn({ err: error }, "cleanup step failed"));
    }
    undo.length = 0;
  };

  try {
    // The stack first: it rejects a bad configuration before any device exists. Undo runs in
    // reverse, so the link goes down before the stack stops and no frame arrives mid-teardown.
    // DNS on the gateway: its policy goes into the stack, then it learns the stack's addresses.
    const dns = createGuestDns(config, logger);
    const policy = dns.policy(stackOptions?.policy);
    const stack = createStack({ ...stackOptions, policy, subnet: config.subnet, mtu: config.mtu, logger });
    undo.push(() => stack.close());
    dns.bind(stack.config, () => stack.leases());
    undo.push(async () => dns.close());
    const tap = await openTap({
      netns: config.netns,
      ifname: config.ifname,
      mtu: config.mtu,
      offload: config.offload,
    });
    undo.push(() => tap.close());
    const watched = watchLink(config.pcap ? withPcap(tap, config.pcap) : tap);
    // Closing the decorated link flushes the pcap file too. The stack closes its link itself on
    // close(), but setup may fail before attach; a second close of either is a no-op.
    undo.push(() => watched.transport.close());

    const net = stack.config;
    let address: string | undefined;
    if (config.configure) {
      // A static lease keeps the stack's DHCP server from handing the address to anyone else
      // and lets the guest's own DHCP client, if it runs later, get the same one.
      stack.addStaticLease(tap.guestMac, net.firstLease);
      address = `${net.firstLease}/${net.prefixLength}`;
    }
    stack.attach(watched.transport);
    logger?.info({ netns: config.netns, ifname: tap.ifname, mac: tap.guestMac }, "guest link attached");

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

    const ready: ReadyInfo = {
      netns: config.netns,
      ifname: tap.ifname,
      mac: tap.guestMac,
      gateway: net.gateway,
      host: net.hostAddress,
      address,
      mtu: tap.mtu,
    };
    let closing: Promise<void> | undefined;
    return {
      stack,
      transport: tap,
      ready,
      readyLine: formatReadyLine(ready),
      linkClosed: watched.closed,
      close() {
        closing ??= unwind().then(() => logger?.info({ netns: config.netns }, "guest link detached"));
        return closing;
      },
    };
  } catch (error) {
    await unwind();
    throw error;
  }
}
