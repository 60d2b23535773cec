/**
 * Automatic port forwarding: a guest that starts listening is published on the host within a
 * second. Two ways to learn a guest's listeners, both the kernel's own socket tables:
 *
 * - a network namespace is read from inside (one `sh` loop in it, `ip netns exec`), twice a second;
 * - a VM reports them itself: the shell line `desktopd autoforward guest-command` prints sends
 *   the tables every second to the gateway's port 6023, served in-process (no host port). When
 *   its reports stop for a few seconds (a reboot, a crash) its forwards go, and come back with
 *   its next report.
 *
 * Rules (`--autoforward RULE`, the API) decide what is published where; `--no-autoforward` is off.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { Duplex } from "node:stream";
import {
  type AutoForwarder,
  type AutoForwardRule,
  type CompiledRule,
  compileAutoForwardRule,
  createAutoForwarder,
  type Forwarder,
  formatAutoForwardRule,
  parseAutoForwardRule,
  parseReport,
  REPORT_SCRIPT,
} from "@desktopd/portfwd";
import type { FlowPolicy, Logger, Stack } from "@desktopd/stack";
import type { RunConfig } from "../config.js";
import type { AutoforwardControl } from "../control/autoforward.js";
import type { EventBus } from "../control/events.js";
import { netAddresses } from "../net-addresses.js";
import type { Service } from "./service.js";

/** The port a VM's reporter sends its socket tables to, on the gateway. */
export const AUTOFORWARD_PORT = 6023;
/** Largest report (four tables of a busy guest are a few hundred KiB at most). */
const MAX_REPORT_BYTES = 1024 * 1024;
/** A VM whose reports stop this long loses its automatic forwards (they return with its next report). */
const REPORT_GRACE_MS = 4000;

export interface AutoforwardRuleInfo {
  id: number;
  rule: string;
}

export interface AutoforwardService extends Service, AutoforwardControl {
  policy(next?: FlowPolicy): FlowPolicy;
  /** Starts: the namespace's reader when there is one (`netnsGuest` is its address). */
  start(stack: Stack, forwarder: Forwarder, netns?: { name: string; guestIp: () => string }): void;
}

/** What a guest runs to report its listeners: POSIX sh, awk and nc (busybox has all three). */
export function reporterCommand(gateway: string): string {
  return `while :; do { while :; do ${REPORT_SCRIPT}; sleep 1; done; } | nc ${gateway} ${AUTOFORWARD_PORT}; sleep 1; done`;
}

export function createAutoforwardService(
  config: RunConfig,
  events: EventBus,
  logger?: Logger,
): AutoforwardService {
  const log = logger?.child({ component: "autoforward" });
  let enabled = config.autoforward;
  let nextId = 1;
  let rules: { id: number; compiled: CompiledRule }[] = [];
  const compile = (r: string | AutoForwardRule) =>
    compileAutoForwardRule(typeof r === "string" ? parseAutoForwardRule(r) : r);
  const replaceRules = (list: readonly (string | AutoForwardRule)[]) => {
    const compiled = list.map(compile);
    rules = compiled.map((c) => ({ id: nextId++, compiled: c }));
  };
  replaceRules(config.autoforwardRule);
  let auto: AutoForwarder | undefined;
  let gateway: string | undefined;
  /** The gateway's addresses, both families: where guests reach this service. */
  let gateways: ReadonlySet<string> | undefined;
  let stackRef: Stack | undefined;
  let reader: ChildProcess | undefined;
  let stopped = false;
  const graceTimers = new Map<string, NodeJS.Timeout>();
  const counters = { reports: 0, rejectedReports: 0, reporterConnections: 0, skippedLines: 0 };

  const apply = (guestIp: string, text: string) => {
    if (!auto || !enabled) return;
    const parsed = parseReport(text);
    counters.reports++;
    counters.skippedLines += parsed.skipped;
    // The guest's IPv6 addresses, as the stack saw it use them: its IPv6-only listeners go there.
    const ipv6 = stackRef?.ipv6AddressesOf(guestIp) ?? [];
    void auto.update(guestIp, parsed.listeners, ipv6).catch((error: unknown) => {
      log?.warn({ guest: guestIp, err: (error as Error).message }, "automatic forwards not updated");
    });
  };

  /** Splits a stream into reports at `@end` lines, each bounded. */
  const reportStream = (onReport: (text: string) => void, onTooBig: () => void) => {
    let pending = "";
    return (chunk: Buffer | string) => {
      pending += chunk.toString();
      for (;;) {
        const end = pending.indexOf("\n@end");
        if (end < 0) break;
        const text = pending.slice(0, end);
        pending = pending.slice(end + 5).replace(/^[^\n]*\n?/, "");
        onReport(text);
      }
      if (pending.length > MAX_REPORT_BYTES) {
        pending = "";
        onTooBig();
      }
    };
  };

  /**
   * A VM that stops reporting — closed, crashed, or gone without a word (a killed VM sends no
   * FIN) — loses its automatic forwards after the grace; its next report brings them back.
   */
  const expectReport = (guestIp: string, streams: Set<Duplex>) => {
    clearTimeout(graceTimers.get(guestIp));
    graceTimers.set(
      guestIp,
      setTimeout(() => {
        graceTimers.delete(guestIp);
        for (const s of streams) s.destroy();
        void auto?.forget(guestIp);
      }, REPORT_GRACE_MS),
    );
  };
  const reporterStreams = new Map<string, Set<Duplex>>();

  const serveReporter = (stream: Duplex, guestIp: string) => {
    counters.reporterConnections++;
    const streams = reporterStreams.get(guestIp) ?? new Set<Duplex>();
    reporterStreams.set(guestIp, streams);
    streams.add(stream);
    expectReport(guestIp, streams);
    stream.on("error", () => {});
    stream.on("close", () => streams.delete(stream));
    const feed = reportStream(
      (text) => {
        expectReport(guestIp, streams);
        apply(guestIp, text);
      },
      () => {
        counters.rejectedReports++;
        log?.info(
          { guest: guestIp, max: MAX_REPORT_BYTES },
          "autoforward report too large: connection closed",
        );
        stream.destroy();
      },
    );
    stream.on("data", feed);
  };

  const startReader = (name: string, guestIp: () => string) => {
    if (stopped) return;
    const script = `while :; do ${REPORT_SCRIPT}; sleep 0.5; done`;
    const child = spawn("ip", ["netns", "exec", name, "sh", "-c", script], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    reader = child;
    child.stdout.on(
      "data",
      reportStream(
        (text) => apply(guestIp(), text),
        () => child.kill(),
      ),
    );
    child.on("error", () => {});
    child.on("exit", () => {
      if (stopped) return;
      // The namespace's guest did not go anywhere: read it again shortly.
      setTimeout(() => startReader(name, guestIp), 1000).unref();
    });
  };

  const ruleInfo = (r: { id: number; compiled: CompiledRule }) => ({
    id: r.id,
    rule: formatAutoForwardRule(r.compiled.rule),
  });

  return {
    name: "autoforward",
    liveKeys: ["autoforward", "autoforwardRule"],
    policy(next) {
      return {
        tcp: (flow) => {
          if (gateways?.has(flow.dstIp) && flow.dstPort === AUTOFORWARD_PORT) {
            return {
              action: "handle",
              service: "autoforward",
              handler: (s) => serveReporter(s, flow.guestIp),
            };
          }
          return next?.tcp?.(flow);
        },
        udp: (flow) => next?.udp?.(flow),
      };
    },
    start(stack, forwarder, netns) {
      stackRef = stack;
      gateway = stack.config.gateway;
      gateways = netAddresses(stack.config).gateways;
      auto = createAutoForwarder({
        forwarder,
        rules: () => rules.map((r) => r.compiled),
        onEvent: (e) => {
          const { type, ...rest } = e;
          events.emit(type, rest);
        },
        ...(log ? { logger: log } : {}),
      });
      if (netns) startReader(netns.name, netns.guestIp);
      log?.info(
        {
          enabled,
          rules: rules.map((r) => formatAutoForwardRule(r.compiled.rule)),
          reporter: `${gateway}:${AUTOFORWARD_PORT}`,
        },
        "automatic forwarding ready",
      );
    },
    async reload(next, changed) {
      if (changed.includes("autoforwardRule")) replaceRules(next.autoforwardRule);
      if (changed.includes("autoforward")) {
        enabled = next.autoforward;
        if (!enabled && auto) for (const e of auto.list()) await auto.forget(e.guestIp);
      }
      return [];
    },
    info() {
      return {
        enabled,
        reporter: gateway ? `${gateway}:${AUTOFORWARD_PORT}` : null,
        guestCommand: gateway ? reporterCommand(gateway) : null,
        rules: rules.map(ruleInfo),
        forwards: auto?.list() ?? [],
        counters: { ...counters, ...(auto ? auto.counters() : {}) },
      };
    },
    addRule(rule, position = rules.length) {
      const entry = { id: nextId++, compiled: compile(rule) };
      rules.splice(Math.max(0, Math.min(rules.length, position)), 0, entry);
      return ruleInfo(entry);
    },
    removeRule(id) {
      const i = rules.findIndex((r) => r.id === id);
      if (i < 0) return undefined;
      const [removed] = rules.splice(i, 1);
      return ruleInfo(removed!);
    },
    async yieldTo(protocol, hostIp, hostPort) {
      await auto?.yieldTo(protocol, hostIp, hostPort);
    },
    status() {
      const i = this.info();
      return { autoforward: { enabled: i.enabled, forwards: i.forwards, reporter: i.reporter } };
    },
    async close() {
      stopped = true;
      reader?.kill();
      for (const t of graceTimers.values()) clearTimeout(t);
      await auto?.close();
    },
  };
}
