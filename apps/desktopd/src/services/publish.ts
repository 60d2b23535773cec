/**
 * Published ports (`-p`): the forwarder, its specs from the config, and those added through the
 * control API. A reload adds the specs new to the config and removes the ones it dropped; ports
 * published through the API are the user's and stay.
 */
import { type Forwarder, PortfwdError } from "@desktopd/portfwd";
import type { Logger, Stack } from "@desktopd/stack";
import type { RunConfig } from "../config.js";
import type { EventBus } from "../control/events.js";
import { type PublishFailure, startPublishing } from "../publish.js";
import type { Service } from "./service.js";

export interface PublishService extends Service {
  readonly forwarder: Forwarder;
  /** Specs from the config that could not be bound at start (the others are served). */
  readonly failed: PublishFailure[];
}

export async function startPublishService(
  config: RunConfig,
  stack: Stack,
  target: () => string,
  events: EventBus,
  logger?: Logger,
  /** Called before a spec of the config is published at a reload (an automatic forward makes room). */
  beforeAdd?: (spec: string) => Promise<void>,
): Promise<PublishService> {
  // Its connections show in flow listings as "publish".
  const dialer = {
    connect: (ip: string, port: number) => stack.connect(ip, port, { service: "publish" }),
    dialUdp: (ip: string, port: number) => stack.dialUdp(ip, port, { service: "publish" }),
  };
  const publishing = await startPublishing(config, dialer, target, logger);
  events.relay(publishing.forwarder);
  const forwarder = publishing.forwarder;
  // Config specs that are being served: a reload compares the next config's with these.
  let wanted = new Set(config.publish ?? []);
  const served = new Set([...wanted].filter((s) => !publishing.failed.some((f) => f.spec === s)));
  return {
    name: "publish",
    forwarder,
    failed: publishing.failed,
    liveKeys: ["publish"],
    pending: () => ([...wanted].some((s) => !served.has(s)) ? ["publish"] : []),
    async reload(next) {
      wanted = new Set(next.publish ?? []);
      const problems: string[] = [];
      for (const spec of [...served]) {
        if (wanted.has(spec)) continue;
        served.delete(spec);
        await forwarder.remove(spec).catch((error: unknown) => {
          // Already removed through the API: nothing left to do.
          if (!PortfwdError.isInstance(error) || error.code !== "ERR_DESKTOPD_PORTFWD_NOT_FOUND") throw error;
        });
      }
      for (const spec of wanted) {
        if (served.has(spec)) continue;
        try {
          await beforeAdd?.(spec);
          await forwarder.add(spec);
          served.add(spec);
        } catch (error) {
          if (!PortfwdError.isInstance(error)) throw error;
          problems.push(`publish ${spec}: ${error.message}`);
        }
      }
      return problems;
    },
    status: () => ({ published: forwarder.list() }),
    close: () => publishing.close(),
  };
}
