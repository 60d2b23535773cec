/**
 * `desktopd run -p SPEC`: publishes guest ports on the host through the stack. Each spec is
 * added on its own, so one that cannot be bound (port taken, privileged) fails alone: it is
 * logged and reported, and the daemon serves the rest.
 */
import {
  createForwarder,
  type Dialer,
  type Forwarder,
  type ForwardInfo,
  type Logger,
  PortfwdError,
} from "@desktopd/portfwd";
import type { LeaseInfo } from "@desktopd/stack";

export interface PublishOptions {
  /** Docker-style specs, already validated by the config schema. */
  publish?: readonly string[];
  /** Target address instead of the guest's leased one. */
  publishTarget?: string;
  /** Host address of specs that name none (the forwarder's default is 127.0.0.1). */
  publishHostIp?: string;
}

export interface PublishFailure {
  spec: string;
  message: string;
}

export interface Publishing {
  forwarder: Forwarder;
  published: ForwardInfo[];
  failed: PublishFailure[];
  close(): Promise<void>;
}

/** The guest's address, asked at each new connection: its lease may come (DHCP) after start. */
export function leasedAddress(
  stack: { leases(): LeaseInfo[]; config: { firstLease: string } },
  guestMac: string,
): () => string {
  return () => stack.leases().find((l) => l.mac === guestMac)?.ip ?? stack.config.firstLease;
}

/**
 * With VMs only: the first guest that leased (the only one, usually), kept while its lease lasts;
 * until one has, the first address. Pinned by MAC: lease renewals reorder expiry times, and the
 * target must not flip between guests as they renew.
 */
export function firstLease(stack: { leases(): LeaseInfo[]; config: { firstLease: string } }): () => string {
  let pinned: string | undefined;
  return () => {
    const leases = stack.leases().filter((l) => !l.static);
    // leases() lists bindings in the order they were made.
    const lease = leases.find((l) => l.mac === pinned) ?? leases[0];
    pinned = lease?.mac;
    return lease?.ip ?? stack.config.firstLease;
  };
}

export async function startPublishing(
  options: PublishOptions,
  dialer: Dialer,
  resolveTarget: () => string | undefined,
  logger?: Logger,
): Promise<Publishing> {
  const target = options.publishTarget ?? resolveTarget;
  const forwarder = createForwarder({
    dialer,
    target,
    ...(options.publishHostIp ? { defaultHostIp: options.publishHostIp } : {}),
    ...(logger ? { logger } : {}),
  });
  if (logger) logForwarderEvents(forwarder, logger);
  const published: ForwardInfo[] = [];
  const failed: PublishFailure[] = [];
  for (const spec of options.publish ?? []) {
    try {
      published.push(...(await forwarder.add(spec)));
    } catch (error) {
      if (!PortfwdError.isInstance(error)) {
        await forwarder.close();
        throw error;
      }
      failed.push({ spec, message: error.message });
      logger?.error({ spec, code: error.code }, error.message);
    }
  }
  return { forwarder, published, failed, close: () => forwarder.close() };
}

/**
 * The forwarder's events in the daemon's log: a dial that fails (nothing listens in the guest,
 * or no guest has the address) is what a user debugging a published port needs to see.
 */
function logForwarderEvents(forwarder: Forwarder, logger: Logger): void {
  forwarder.on("dial-failed", ({ id, remote, target, error }) =>
    logger.warn({ id, remote, target, err: error.message }, "published port: the guest side refused"),
  );
  forwarder.on("connection", ({ id, remote }) => logger.debug({ id, remote }, "published port: connection"));
  forwarder.on("connection-closed", ({ id, remote, bytesIn, bytesOut }) =>
    logger.debug({ id, remote, bytesIn, bytesOut }, "published port: connection closed"),
  );
}

/** `tcp/127.0.0.1:8080>80,udp/[::1]:5353>53` for the ready line. */
export function formatPublished(published: readonly ForwardInfo[]): string | undefined {
  if (published.length === 0) return undefined;
  return published.map((f) => `${f.id}>${f.targetPort}`).join(",");
}
