/**
 * `desktopd demo` (`npm start`): create a fresh namespace, attach and configure it, explain how
 * to try it, and remove the namespace on exit.
 */
import type { DemoConfig } from "../config.js";
import { runDaemon } from "../daemon.js";
import { NetnsExistsError } from "../errors.js";
import { ip } from "../exec.js";
import { createLogger } from "../logger.js";
import { checkRoot, checkTun, netnsExists } from "../preflight.js";
import type { ReadyInfo } from "../ready.js";
import { listenForShutdown } from "../signals.js";
import type { CliIo } from "./io.js";
import { serveUntilStopped } from "./serve.js";

export function demoUsage(ready: ReadyInfo): string {
  const ns = `ip netns exec ${ready.netns}`;
  return `
The network namespace "${ready.netns}" now has ${ready.ifname} (${ready.address ?? "DHCP"}) behind desktopd.
From another terminal, as root:

  # the gateway answers
  ${ns} ping -c1 ${ready.gateway}

  # ${ready.host} is this host's 127.0.0.1: serve something on loopback, fetch it from the guest
  python3 -m http.server --bind 127.0.0.1 8000
  ${ns} curl http://${ready.host}:8000/

  # names resolve through desktopd's DNS on the gateway (host.docker.internal is this host)
  ${ns} getent hosts host.docker.internal

  # any other address is NATed onto ordinary sockets of this host
  ${ns} curl http://ADDRESS-THIS-HOST-CAN-REACH/

  # a shell inside the guest
  ${ns} bash

Press Ctrl-C to stop; "${ready.netns}" is removed on exit.
`;
}

export async function demoCommand(config: DemoConfig, io: CliIo): Promise<number> {
  const { logLevel, ...options } = config;
  checkRoot();
  await checkTun();
  if (await netnsExists(options.netns)) throw new NetnsExistsError(options.netns);
  const logger = createLogger(logLevel);
  const signals = listenForShutdown();
  await ip(["netns", "add", options.netns]);
  logger.info({ netns: options.netns }, "network namespace created");
  try {
    const handle = await runDaemon({ ...options, configure: true, logger });
    io.out(`${handle.readyLine}\n`);
    io.out(demoUsage(handle.ready));
    return await serveUntilStopped(handle, signals, logger);
  } finally {
    await ip(["netns", "del", options.netns]).then(
      () => logger.info({ netns: options.netns }, "network namespace removed"),
      (error: unknown) => logger.warn({ err: error }, "could not remove the network namespace"),
    );
    signals.dispose();
  }
}
