/**
 * A network namespace as a guest: a TAP device inside it plugged into the switch and, with
 * --configure, the address, route and resolv.conf a DHCP client would have set.
 */
import { type Logger, openTap, type Stack, type TapTransport, type VirtualSwitch } from "@desktopd/stack";
import type { RunConfig } from "../config.js";
import type { LinkLoss } from "../daemon.js";
import { configureGuest, staticIpv6Address } from "../guest-config.js";
import { watchLink } from "../link-watch.js";
import { installResolvConf, renderResolvConf } from "../resolv-conf.js";
import type { Service } from "./service.js";

export interface NetnsService extends Service {
  readonly tap: TapTransport;
  /** The guest's address with prefix length, when desktopd configured it. */
  readonly address: string | undefined;
  /** Settles if the namespace's link goes away by itself. */
  readonly loss: Promise<LinkLoss>;
}

export async function startNetns(
  config: RunConfig & { netns: string },
  stack: Stack,
  sw: VirtualSwitch,
  logger?: Logger,
): Promise<NetnsService> {
  const net = stack.config;
  const tap = await openTap({
    netns: config.netns,
    ifname: config.ifname,
    mtu: config.mtu,
    offload: config.offload,
  });
  let restoreResolvConf: (() => Promise<void>) | undefined;
  const close = async () => {
    await restoreResolvConf?.();
    await tap.close();
  };
  try {
    const watched = watchLink(tap);
    let address: string | undefined;
    if (config.configure) {
      // A static lease keeps the DHCP server from handing the address to anyone else and lets
      // the guest's own DHCP client, if it runs later, get the same one.
      stack.addStaticLease(tap.guestMac, net.firstLease);
      address = `${net.firstLease}/${net.prefixLength}`;
    }
    sw.addPort(watched.transport);
    const link = `${tap.ifname} in network namespace "${config.netns}"`;
    const loss = watched.closed.then((error) => ({ link, error }));
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
        ...(net.ipv6
          ? {
              ipv6: {
                address: staticIpv6Address(net.ipv6.prefix, net.firstLease),
                gatewayLinkLocal: net.ipv6.gatewayLinkLocal,
              },
            }
          : {}),
      });
      const content = renderResolvConf({
        netns: config.netns,
        nameservers: net.dnsServers,
        searchDomains: net.searchDomains,
      });
      restoreResolvConf = await installResolvConf(config.netns, content);
      logger?.info({ address, gateway: net.gateway, dns: net.dnsServers }, "guest configured");
    }
    return {
      name: "netns",
      tap,
      address,
      loss,
      status: () => ({ netns: { name: config.netns, ifname: tap.ifname, mac: tap.guestMac, address } }),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
