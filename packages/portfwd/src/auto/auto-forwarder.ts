/**
 * Automatic forwards: each guest's listeners (from its socket tables, reported every second or
 * so) become published ports through the rules, and stop being published when they close. A
 * host port that cannot be had (taken, privileged) is reported once and tried again at every
 * report until it frees; an explicit publish always wins; the number of automatic forwards is
 * capped. Reports are applied one at a time, in order.
 */
import { type Logger, silentLogger } from "@desktopd/core";
import { PortfwdError } from "../errors.js";
import type { Forwarder } from "../forwarder.js";
import type { Listener } from "./proc-net.js";
import { type CompiledRule, decideAutoForward } from "./rules.js";

export const AUTO_LABEL = "auto";

export interface AutoForwardInfo {
  guestIp: string;
  /** The address dialled when not `guestIp`: the guest's IPv6 address its listener is bound to. */
  target?: string;
  protocol: "tcp" | "udp";
  guestPort: number;
  hostIp: string;
  hostPort: number;
  /**
   * pending (being published); published; waiting (the host port could not be had: `problem` says
   * why, retried at each report); explicit (a -p holds the port).
   */
  state: "pending" | "published" | "waiting" | "explicit";
  problem?: string;
  /** The forward's id while published. */
  id?: string;
}

export interface AutoForwarderCounters {
  reports: number;
  published: number;
  unpublished: number;
  /** Listeners not forwarded, by reason (guest-loopback, ignored, cap...). */
  skipped: Record<string, number>;
  failures: number;
}

export type AutoForwardEvent =
  | { type: "autoforward-added"; guestIp: string; id: string; guestPort: number }
  | { type: "autoforward-removed"; guestIp: string; id: string; guestPort: number }
  | {
      type: "autoforward-failed";
      guestIp: string;
      protocol: string;
      guestPort: number;
      host: string;
      problem: string;
    }
  | { type: "autoforward-cap"; guestIp: string; max: number; wanted: number };

export interface AutoForwarderOptions {
  forwarder: Forwarder;
  /** The rules, read at every report (they change at run time). */
  rules: () => readonly CompiledRule[];
  /** Most automatic forwards across guests (default 256); beyond it, reported once. */
  maxForwards?: number;
  onEvent?: (event: AutoForwardEvent) => void;
  logger?: Logger;
}

export interface AutoForwarder {
  /**
   * A whole report of the listeners of the guest at `guestIp`; `guestIpv6`: its IPv6 addresses,
   * so listeners bound to one of them are forwarded there.
   */
  update(guestIp: string, listeners: readonly Listener[], guestIpv6?: readonly string[]): Promise<void>;
  /** The guest stopped reporting: its automatic forwards go (they come back with its next report). */
  forget(guestIp: string): Promise<void>;
  /** Makes room for an explicit publish of `protocol` `hostIp:hostPort`: the automatic one there goes. */
  yieldTo(protocol: "tcp" | "udp", hostIp: string, hostPort: number): Promise<void>;
  list(): AutoForwardInfo[];
  counters(): AutoForwarderCounters;
  close(): Promise<void>;
}

const keyOf = (protocol: string, hostIp: string, hostPort: number) =>
  `${protocol}/${hostIp.includes(":") ? `[${hostIp}]` : hostIp}:${hostPort}`;

export function createAutoForwarder(o: AutoForwarderOptions): AutoForwarder {
  const log = o.logger ?? silentLogger;
  const max = o.maxForwards ?? 256;
  /** By host key: what each automatic forward is, published or waiting. */
  const entries = new Map<string, AutoForwardInfo>();
  const capReported = new Set<string>();
  const counters: AutoForwarderCounters = {
    reports: 0,
    published: 0,
    unpublished: 0,
    skipped: {},
    failures: 0,
  };
  let queue: Promise<void> = Promise.resolve();
  let closed = false;
  const serial = (work: () => Promise<void>) => {
    const next = queue.then(work, work);
    queue = next.catch(() => {});
    return next;
  };
  const skip = (reason: string, n = 1) => {
    counters.skipped[reason] = (counters.skipped[reason] ?? 0) + n;
  };

  const unpublish = async (key: string, e: AutoForwardInfo) => {
    entries.delete(key);
    if (e.state !== "published" || !e.id) return;
    await o.forwarder.remove(e.id).catch((error: unknown) => {
      if (!PortfwdError.isInstance(error)) throw error;
    });
    counters.unpublished++;
    log.info({ id: e.id, guest: e.guestIp, guestPort: e.guestPort }, "automatic forward removed");
    o.onEvent?.({ type: "autoforward-removed", guestIp: e.guestIp, id: e.id, guestPort: e.guestPort });
  };

  const tryPublish = async (key: string, e: AutoForwardInfo) => {
    const explicit = o.forwarder.list().find((f) => f.id === key && f.label !== AUTO_LABEL);
    if (explicit) {
      e.state = "explicit";
      return;
    }
    const host = e.hostIp.includes(":") ? `[${e.hostIp}]` : e.hostIp;
    try {
      const [info] = await o.forwarder.add(`${host}:${e.hostPort}:${e.guestPort}/${e.protocol}`, {
        target: e.target ?? e.guestIp,
        label: AUTO_LABEL,
      });
      const wasWaiting = e.state === "waiting";
      e.state = "published";
      e.id = info!.id;
      delete e.problem;
      counters.published++;
      log.info(
        { id: e.id, guest: `${e.guestIp}:${e.guestPort}`, after: wasWaiting ? "waiting" : undefined },
        "automatic forward published",
      );
      o.onEvent?.({ type: "autoforward-added", guestIp: e.guestIp, id: e.id, guestPort: e.guestPort });
    } catch (error) {
      if (!PortfwdError.isInstance(error)) throw error;
      const first = e.problem === undefined;
      e.state = "waiting";
      e.problem = error.message;
      if (first) {
        // Once per port: the next reports retry quietly until it frees.
        counters.failures++;
        log.info(
          { guest: `${e.guestIp}:${e.guestPort}`, err: error.message },
          "automatic forward waits for its host port",
        );
        o.onEvent?.({
          type: "autoforward-failed",
          guestIp: e.guestIp,
          protocol: e.protocol,
          guestPort: e.guestPort,
          host: keyOf(e.protocol, e.hostIp, e.hostPort),
          problem: error.message,
        });
      }
    }
  };

  return {
    update(guestIp, listeners, guestIpv6 = []) {
      return serial(async () => {
        if (closed) return;
        counters.reports++;
        const rules = o.rules();
        const wanted = new Map<string, AutoForwardInfo>();
        for (const l of listeners) {
          const d = decideAutoForward(l, guestIp, rules, guestIpv6);
          if (!d.publish) {
            skip(d.reason);
            continue;
          }
          const key = keyOf(l.protocol, d.hostIp, d.hostPort);
          if (!wanted.has(key)) {
            wanted.set(key, {
              guestIp,
              protocol: l.protocol,
              guestPort: l.port,
              hostIp: d.hostIp,
              hostPort: d.hostPort,
              state: "waiting",
              ...(d.target ? { target: d.target } : {}),
            });
          }
        }
        for (const [key, e] of [...entries]) {
          const w = wanted.get(key);
          if (e.guestIp === guestIp && (!w || w.guestPort !== e.guestPort)) await unpublish(key, e);
        }
        let count = entries.size;
        let over = 0;
        for (const [key, w] of wanted) {
          const e = entries.get(key);
          if (e && e.guestIp !== guestIp) {
            // Another guest has this host port: this one waits, reported once.
            skip("host-port-of-another-guest");
            continue;
          }
          if (e && e.state === "published") continue;
          if (!e) {
            if (count >= max) {
              over++;
              continue;
            }
            entries.set(key, w);
            count++;
          }
          await tryPublish(key, entries.get(key)!);
        }
        if (over > 0) {
          skip("cap", over);
          if (!capReported.has(guestIp)) {
            capReported.add(guestIp);
            log.warn({ guest: guestIp, max, wanted: wanted.size }, "automatic forwards capped");
            o.onEvent?.({ type: "autoforward-cap", guestIp, max, wanted: wanted.size });
          }
        } else capReported.delete(guestIp);
      });
    },
    forget(guestIp) {
      return serial(async () => {
        for (const [key, e] of [...entries]) if (e.guestIp === guestIp) await unpublish(key, e);
        capReported.delete(guestIp);
      });
    },
    yieldTo(protocol, hostIp, hostPort) {
      return serial(async () => {
        const key = keyOf(protocol, hostIp, hostPort);
        const e = entries.get(key);
        if (e?.state !== "published") return;
        await unpublish(key, e);
        // Kept, marked: while the explicit one holds the port, no automatic one comes back.
        entries.set(key, { ...e, state: "explicit" });
        delete entries.get(key)!.id;
      });
    },
    list: () => [...entries.values()].map((e) => ({ ...e })),
    counters: () => ({ ...counters, skipped: { ...counters.skipped } }),
    close() {
      return serial(async () => {
        closed = true;
        for (const [key, e] of [...entries]) await unpublish(key, e);
      });
    },
  };
}
