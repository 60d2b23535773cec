/**
 * `runDaemon`: the composition behind `desktopd run`. The daemon is a list of services started in
 * the order below and closed in reverse — DNS, the proxy and the SSH agent relay (their policies go into the stack), the network
 * (stack and switch), the VM transports, a network namespace, published ports, the control API —
 * each a module under services/ with start, close, status and, where it applies, reload.
 * Everything except argument parsing, printing and signals, so other tools and tests can embed it.
 */
import { dirname, join } from "node:path";
import { type Forwarder, parsePublishSpec } from "@desktopd/portfwd";
import type { Logger, Stack, StackOptions, TapTransport, VirtualSwitch } from "@desktopd/stack";
import {
  type LogLevel,
  namesNoTransport,
  parseRunOptions,
  type RunConfig,
  type RunOptionsInput,
} from "./config.js";
import { EventBus } from "./control/events.js";
import { type ControlTarget, controlListener, controlSocketAnswers } from "./control/server.js";
import { ControlError } from "./errors.js";
import { createDaemonMetrics } from "./metrics.js";
import { checkNetns, checkRoot, checkTun } from "./preflight.js";
import { processStats } from "./process-stats.js";
import { firstLease, formatPublished, leasedAddress, type PublishFailure } from "./publish.js";
import { formatReadyLine, type ReadyInfo } from "./ready.js";
import { type ReloadReport, reloadServices } from "./reload.js";
import { ensurePrivateDir, runtimeDir } from "./runtime-dir.js";
import { createAutoforwardService } from "./services/autoforward.js";
import { startControl } from "./services/control.js";
import { createDnsService } from "./services/dns.js";
import { startMemoryTrim } from "./services/memory-trim.js";
import { startMetricsServer } from "./services/metrics.js";
import { startNetns } from "./services/netns.js";
import { startNetwork } from "./services/network.js";
import { createProxyService } from "./services/proxy.js";
import { startPublishService } from "./services/publish.js";
import { type Service, ServiceList } from "./services/service.js";
import { createSshAgentService } from "./services/ssh-agent.js";
import { startTransports } from "./services/transports.js";
import { startUiServer } from "./ui-server.js";

export type { Logger, ReloadReport, TapTransport };

export interface DaemonOptions extends Omit<RunOptionsInput, "logLevel"> {
  /** Receives the daemon's and the stack's logs; none are written without one. */
  logger?: Logger;
  /** Changes the logger's level when a reload changes `logLevel`. */
  setLogLevel?: (level: LogLevel) => void;
  /** Further stack options (DNS servers, search domains, policy...); subnet and MTU come from above. */
  stackOptions?: Omit<StackOptions, "subnet" | "mtu" | "logger">;
  /** Where the default sockets go when no transport is named (default: the per-user runtime directory). */
  runtimeDir?: string;
  /**
   * The control API's path when `control` is not given; if a live daemon already answers there,
   * this one serves beside it at `control-NAME.sock` (NAME: the namespace, else the pid).
   */
  defaultControl?: string;
  /** Reads the options again for a reload (SIGHUP, POST /v1/reload): the config file under the command line. */
  reloadOptions?: () => RunOptionsInput;
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
  /** The services in start order. */
  services: readonly Service[];
  /** GET /v1/status's answer. */
  status(): Record<string, unknown>;
  /**
   * Re-reads the options (`reloadOptions`) and applies what can change live; rejects with
   * InvalidOptionError on a bad config, which leaves the running one as it was.
   */
  reload(): Promise<ReloadReport>;
  /** Stops serving: closes sockets and links, removes the device and the resolv.conf written by `configure`. Idempotent. */
  close(): Promise<void>;
}

export async function runDaemon(options: DaemonOptions): Promise<DaemonHandle> {
  const {
    logger,
    setLogLevel,
    stackOptions,
    runtimeDir: dirOption,
    defaultControl,
    reloadOptions,
    ...rest
  } = options;
  const config = parseRunOptions(rest);
  let fallbackControl = defaultControl;
  if (namesNoTransport(config)) {
    const dir = ensurePrivateDir(dirOption ?? runtimeDir());
    config.qemuSocket = [join(dir, "qemu.sock")];
    config.vfkitSocket = [join(dir, "vfkit.sock")];
    fallbackControl ??= join(dir, "control.sock");
  }
  if (config.netns) {
    checkRoot();
    await checkTun();
    await checkNetns(config.netns);
  }
  // The default control socket's directory is private, like the default VM sockets'.
  if (config.control === undefined && fallbackControl !== undefined)
    ensurePrivateDir(dirname(fallbackControl));
  // A named control socket in use is an error before a device exists.
  if (config.control !== undefined && (await controlSocketAnswers(config.control))) {
    throw new ControlError(
      `${config.control} is in use by another desktopd: stop that one, or serve this one's control API elsewhere with --control PATH`,
    );
  }

  const services = new ServiceList((name, error) =>
    logger?.warn({ service: name, err: error }, "service did not close cleanly"),
  );
  const events = new EventBus();
  try {
    const dns = services.add(createDnsService(config, logger));
    const proxy = services.add(createProxyService(config, events, logger));
    const agent = services.add(createSshAgentService(config, events, logger));
    const autoforward = createAutoforwardService(config, events, logger);
    const network = services.add(
      startNetwork(config, {
        policy: dns.guestDns.policy(proxy.policy(agent.policy(autoforward.policy(stackOptions?.policy)))),
        // Egress rules by name see what the gateway's DNS answered each guest.
        namesFor: (guest, dst) => dns.guestDns.names.namesFor(guest, dst),
        stackOptions,
        events,
        logger,
      }),
    );
    const { stack, switch: sw } = network;
    const guestDns = dns.bind(stack.config, () => stack.leases());
    await proxy.bind(stack, guestDns);
    agent.bind(stack);
    const transports = services.add(await startTransports(config, sw, logger));
    const netns = config.netns
      ? services.add(await startNetns({ ...config, netns: config.netns }, stack, sw, logger))
      : undefined;
    // Published ports lead to the namespace's guest, else to the first guest that took a lease.
    const target = netns ? leasedAddress(stack, netns.tap.guestMac) : firstLease(stack);
    const publishing = services.add(
      await startPublishService(config, stack, target, events, logger, async (spec) => {
        for (const m of parsePublishSpec(spec).mappings)
          await autoforward.yieldTo(m.protocol, m.hostIp, m.hostPort);
      }),
    );
    // After publishing: explicit ports are bound first and always win over automatic ones.
    services.add(autoforward);
    autoforward.start(
      stack,
      publishing.forwarder,
      netns && config.netns ? { name: config.netns, guestIp: target } : undefined,
    );
    if (setLogLevel) {
      services.add({
        name: "log",
        liveKeys: ["logLevel"],
        async reload(next) {
          setLogLevel(next.logLevel);
          return [];
        },
        close: async () => {},
      });
    }

    const metrics = createDaemonMetrics({
      links: () => sw.ports(),
      stack: () => stack.counters(),
      published: () => publishing.forwarder.list(),
      dns: () => dns.server?.handler.counters(),
      proxy: () => proxy.counters(),
      sshAgent: () => agent.counters(),
    });
    const stopObserving = dns.guestDns.observeQueries((entry) => metrics.observeDnsQuery(entry));
    services.add({ name: "dns-observer", close: async () => void stopObserving() });
    const metricsServer = config.metrics
      ? services.add(await startMetricsServer(config.metrics, metrics, logger))
      : undefined;
    services.add(startMemoryTrim(logger));

    const net = stack.config;
    const ready: ReadyInfo = {
      netns: config.netns,
      ifname: netns?.tap.ifname,
      mac: netns?.tap.guestMac,
      gateway: net.gateway,
      host: net.hostAddress,
      address: netns?.address,
      mtu: config.mtu,
      subnet: net.subnet,
      ipv6: net.ipv6?.prefix,
      qemu: [...transports.qemuListen, ...transports.qemuConnect].map((a) =>
        "path" in a ? a.path : `tcp:${a.host}:${a.port}`,
      ),
      vfkit: config.vfkitSocket,
      stdio: config.stdio || undefined,
      published: formatPublished(publishing.forwarder.list()),
      metrics: metricsServer?.url,
    };
    const status = () => ({ ready, ...services.status(), process: processStats() });
    let running: RunConfig = config;
    let reloading: Promise<ReloadReport> = Promise.resolve({} as ReloadReport);
    const reload = (): Promise<ReloadReport> => {
      // One at a time: a second SIGHUP waits for the first to finish.
      reloading = reloading
        .catch(() => undefined)
        .then(async () => {
          if (!reloadOptions) {
            return {
              changed: [],
              applied: [],
              restartNeeded: [],
              problems: [],
              note: "nothing to re-read: this daemon was started without --config FILE",
            };
          }
          const next = parseRunOptions(reloadOptions());
          // What the daemon filled in at start is not a change.
          if (namesNoTransport(next)) {
            next.qemuSocket = running.qemuSocket;
            next.vfkitSocket = running.vfkitSocket;
          }
          next.control ??= running.control;
          const outcome = await reloadServices(services.all, running, next);
          running = outcome.running;
          logger?.info(outcome.report, "config reloaded");
          events.emit("reloaded", { ...outcome.report });
          return outcome.report;
        });
      return reloading;
    };
    const api: ControlTarget = {
      forwarder: publishing.forwarder,
      dns: guestDns,
      egress: stack.egress,
      events,
      status,
      flows: () => stack.flows(),
      reload,
      metrics,
      proxy,
      autoforward,
    };
    const control = await startControl(
      {
        explicit: config.control,
        fallbackDefault: fallbackControl,
        instance: config.netns ?? String(process.pid),
      },
      api,
      logger,
    );
    if (control) {
      services.add(control);
      ready.control = control.path;
    }
    if (config.ui) {
      const ui = await startUiServer({
        listen: config.ui,
        api: controlListener(api),
        ...(logger ? { logger } : {}),
      });
      services.add({ name: "ui", status: () => ({}), close: () => ui.close() });
      ready.ui = ui.url;
    }
    let closing: Promise<void> | undefined;
    const losses = [transports.loss, netns?.loss].filter((l) => l !== undefined);
    return {
      stack,
      switch: sw,
      ...(netns ? { tap: netns.tap } : {}),
      forwarder: publishing.forwarder,
      publishFailures: publishing.failed,
      ready,
      readyLine: formatReadyLine(ready),
      attachHelp: transports.attachHelp(),
      linkClosed: losses.length > 0 ? Promise.race(losses) : new Promise<LinkLoss>(() => {}),
      services: services.all,
      status,
      reload,
      close() {
        closing ??= services.close().then(() => logger?.info({}, "stopped"));
        return closing;
      },
    };
  } catch (error) {
    await services.close();
    throw error;
  }
}
