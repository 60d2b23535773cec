/**
 * The runtime API: publish specs, unpublish them, list forwards with live stats, and events.
 * Each host port maps to one target at a time; a spec that cannot be bound fails alone and
 * leaves nothing of itself behind.
 */
import { EventEmitter } from "node:events";
import { isIP } from "node:net";
import type { Dialer } from "@desktopd/core";
import { type Clock, type Logger, SlabPool, silentLogger, systemClock } from "@desktopd/core";
import {
  ForwardConflictError,
  ForwarderClosedError,
  ForwardNotFoundError,
  formatHostPort,
  PortfwdOptionError,
  TargetUnavailableError,
} from "./errors.js";
import {
  emptyStats,
  type ForwardContext,
  type ForwarderEvents,
  type ForwardInfoBase,
  type ForwardStats,
  type RunningForward,
} from "./forward.js";
import { addressesOverlap } from "./port-holder.js";
import { DEFAULT_HOST_IP, type PortMapping, type PublishSpec, parsePublishSpec } from "./spec.js";
import { TcpForward } from "./tcp-forward.js";
import { UdpForward } from "./udp-forward.js";

/** A target address, or a function asked at each new connection (e.g. the guest's current lease). */
export type TargetAddress = string | (() => string | undefined);

export interface ForwarderOptions {
  /** How targets are reached: `@desktopd/stack`'s Stack, or `createSocketDialer()`. */
  dialer: Dialer;
  /** Target address of forwards whose `add` names none. */
  target?: TargetAddress;
  /** Host address of specs that name none (default 127.0.0.1, not Docker's 0.0.0.0). */
  defaultHostIp?: string;
  /** Close a TCP connection after this long with no traffic either way (default: never). */
  tcpIdleTimeoutMs?: number;
  /** Close a UDP client flow after this long with no traffic either way (default 60 s). */
  udpIdleTimeoutMs?: number;
  /** Most UDP client flows per forward (default 1024). */
  udpMaxFlows?: number;
  logger?: Logger;
  /** Idle times and sweeps of UDP flows run on it (default: the system's monotonic clock). */
  clock?: Clock;
}

export interface AddOptions {
  /** Overrides the forwarder's target address for this spec. */
  target?: TargetAddress;
  /** Who published it, shown in `list()` (e.g. "auto" for automatic forwards). */
  label?: string;
}

export interface RemoveOptions {
  /** Also close the forward's open connections (TCP clients are reset). Default false: they live on. */
  closeConnections?: boolean;
}

export interface ForwardInfo extends ForwardInfoBase {
  stats: ForwardStats;
}

export interface Forwarder {
  /**
   * Publishes a spec (`"8080:80"`, `"127.0.0.1:5353:53/udp"`, `"9000-9002:9000-9002"`). Resolves
   * when every port of it listens; if one cannot be bound, none stays open and the typed error
   * (PortInUseError, PrivilegedPortError, ForwardConflictError, SpecError...) rejects.
   */
  add(spec: string | PublishSpec, options?: AddOptions): Promise<ForwardInfo[]>;
  /** Unpublishes by forward id (`tcp/127.0.0.1:8080`) or by spec; rejects ForwardNotFoundError. */
  remove(idOrSpec: string, options?: RemoveOptions): Promise<ForwardInfo[]>;
  list(): ForwardInfo[];
  on<K extends keyof ForwarderEvents>(event: K, listener: (payload: ForwarderEvents[K]) => void): this;
  off<K extends keyof ForwarderEvents>(event: K, listener: (payload: ForwarderEvents[K]) => void): this;
  /** Removes every forward and closes its connections. */
  close(): Promise<void>;
}

export function createForwarder(options: ForwarderOptions): Forwarder {
  return new PortForwarder(options);
}

interface Entry {
  info: ForwardInfoBase;
  stats: ForwardStats;
  forward: RunningForward;
  resolveTarget: () => string | undefined;
}

class PortForwarder extends EventEmitter implements Forwarder {
  private readonly entries = new Map<string, Entry>();
  /** Ports being bound by an add in progress, so two concurrent adds cannot both claim one. */
  private readonly claimed = new Set<string>();
  /** Removed forwards whose connections were left open: close() still ends them. */
  private readonly retired = new Set<Entry>();
  private readonly log: Logger;
  /**
   * Client reads on their way to a target, shared by every TCP forward. A copy is given back as
   * soon as the target took it, so a few slabs serve all connections.
   */
  private readonly readPool: SlabPool;
  private closed = false;

  constructor(private readonly options: ForwarderOptions) {
    super();
    validateOptions(options);
    this.log = options.logger ?? silentLogger;
    this.readPool = new SlabPool({ maxSlabs: 64, maxFree: 8, clock: options.clock ?? systemClock });
  }

  async add(spec: string | PublishSpec, options: AddOptions = {}): Promise<ForwardInfo[]> {
    if (this.closed) throw new ForwarderClosedError();
    const parsed =
      typeof spec === "string"
        ? parsePublishSpec(spec, { defaultHostIp: this.options.defaultHostIp ?? DEFAULT_HOST_IP })
        : spec;
    const target = options.target ?? this.options.target;
    if (target === undefined) {
      throw new TargetUnavailableError(
        `${parsed.spec}: no target address; give createForwarder or add() one`,
      );
    }
    if (parsed.protocol === "udp" && !this.options.dialer.dialUdp) {
      throw new TargetUnavailableError(`${parsed.spec}: this dialer has no UDP (dialUdp)`);
    }
    const resolveTarget = typeof target === "function" ? this.guarded(target) : () => target;
    for (const m of parsed.mappings) this.checkConflict(m);
    const claims = parsed.mappings.filter((m) => m.hostPort !== 0).map(keyOf);
    for (const c of claims) this.claimed.add(c);
    const started: Entry[] = [];
    try {
      for (const m of parsed.mappings) {
        started.push(await this.startOne(parsed.spec, m, resolveTarget, options.label));
      }
    } catch (err) {
      await Promise.all(started.map((e) => e.forward.close(true)));
      throw err;
    } finally {
      for (const c of claims) this.claimed.delete(c);
    }
    if (this.closed) {
      await Promise.all(started.map((e) => e.forward.close(true)));
      throw new ForwarderClosedError();
    }
    for (const e of started) {
      this.entries.set(e.info.id, e);
      const { stats: _, ...info } = this.infoOf(e);
      this.log.info({ id: info.id, target: `${info.targetIp ?? "?"}:${info.targetPort}` }, "published");
      this.emit("added", { id: info.id, info });
    }
    return started.map((e) => this.infoOf(e));
  }

  async remove(idOrSpec: string, options: RemoveOptions = {}): Promise<ForwardInfo[]> {
    const matches = this.match(idOrSpec);
    if (matches.length === 0) throw new ForwardNotFoundError(`no forward matches "${idOrSpec}"`);
    const infos = matches.map((e) => this.infoOf(e));
    for (const e of matches) this.entries.delete(e.info.id);
    const closeConnections = options.closeConnections === true;
    for (const e of this.retired) if (e.stats.open === 0) this.retired.delete(e);
    if (!closeConnections) for (const e of matches) this.retired.add(e);
    await Promise.all(matches.map((e) => e.forward.close(closeConnections)));
    for (const e of matches) {
      this.log.info({ id: e.info.id }, "unpublished");
      this.emit("removed", { id: e.info.id });
    }
    return infos;
  }

  list(): ForwardInfo[] {
    return [...this.entries.values()].map((e) => this.infoOf(e));
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.entries.values(), ...this.retired];
    this.entries.clear();
    this.retired.clear();
    await Promise.all(all.map((e) => e.forward.close(true)));
    this.readPool.close();
  }

  private async startOne(
    spec: string,
    mapping: PortMapping,
    resolveTarget: () => string | undefined,
    label: string | undefined,
  ): Promise<Entry> {
    const stats = emptyStats();
    const info: ForwardInfoBase = {
      id: "",
      spec,
      protocol: mapping.protocol,
      hostIp: mapping.hostIp,
      hostPort: mapping.hostPort,
      targetIp: undefined,
      targetPort: mapping.targetPort,
      ...(label ? { label } : {}),
    };
    const ctx: ForwardContext = {
      id: "",
      mapping,
      dialer: this.options.dialer,
      resolveTarget,
      stats,
      log: this.log,
      emit: (event, payload) => this.emit(event, payload),
      udpIdleTimeoutMs: this.options.udpIdleTimeoutMs ?? 60_000,
      udpMaxFlows: this.options.udpMaxFlows ?? 1024,
      clock: this.options.clock ?? systemClock,
      readPool: this.readPool,
    };
    if (this.options.tcpIdleTimeoutMs !== undefined) ctx.tcpIdleTimeoutMs = this.options.tcpIdleTimeoutMs;
    const forward = mapping.protocol === "tcp" ? new TcpForward(ctx) : new UdpForward(ctx);
    let port: number;
    try {
      port = await forward.start();
    } catch (err) {
      // A failed bind leaves the socket open (dgram does not close it): close it here.
      await forward.close(true);
      throw err;
    }
    info.hostPort = port;
    info.id = idOf(mapping.protocol, mapping.hostIp, port);
    ctx.id = info.id;
    return { info, stats, forward, resolveTarget };
  }

  /** Each host port maps to one target: equal addresses, or a wildcard on either side, collide. */
  private checkConflict(m: PortMapping): void {
    if (m.hostPort === 0) return;
    if (this.claimed.has(keyOf(m))) {
      throw new ForwardConflictError(m.protocol, m.hostIp, m.hostPort, { id: "(being added)", target: "?" });
    }
    for (const e of this.entries.values()) {
      const i = e.info;
      if (i.protocol !== m.protocol || i.hostPort !== m.hostPort) continue;
      if (addressesOverlap(i.hostIp, m.hostIp)) {
        const target = `${e.resolveTarget() ?? "?"}:${i.targetPort}`;
        throw new ForwardConflictError(m.protocol, m.hostIp, m.hostPort, { id: i.id, target });
      }
    }
  }

  private match(idOrSpec: string): Entry[] {
    const byId = this.entries.get(idOrSpec);
    if (byId) return [byId];
    if (/^(tcp|udp)\//.test(idOrSpec)) return [];
    const spec = parsePublishSpec(idOrSpec, { defaultHostIp: this.options.defaultHostIp ?? DEFAULT_HOST_IP });
    const found: Entry[] = [];
    for (const m of spec.mappings) {
      for (const e of this.entries.values()) {
        const i = e.info;
        if (i.protocol !== m.protocol || i.hostIp !== m.hostIp) continue;
        // A spec that let the port be chosen matches by target port.
        if (m.hostPort === 0 ? i.targetPort === m.targetPort : i.hostPort === m.hostPort) found.push(e);
      }
    }
    return [...new Set(found)];
  }

  /** A target function that throws must not take the listener down: the target is then unknown. */
  private guarded(target: () => string | undefined): () => string | undefined {
    return () => {
      try {
        return target();
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, "target function threw");
        return undefined;
      }
    };
  }

  private infoOf(e: Entry): ForwardInfo {
    return { ...e.info, targetIp: e.resolveTarget(), stats: { ...e.stats } };
  }
}

function validateOptions(o: ForwarderOptions): void {
  const check = (name: string, value: number | undefined, min: number) => {
    if (value !== undefined && !(Number.isSafeInteger(value) && value >= min)) {
      throw new PortfwdOptionError(`${name} must be an integer ≥ ${min}, not ${String(value)}`);
    }
  };
  check("tcpIdleTimeoutMs", o.tcpIdleTimeoutMs, 1);
  check("udpIdleTimeoutMs", o.udpIdleTimeoutMs, 1);
  check("udpMaxFlows", o.udpMaxFlows, 1);
  if (o.defaultHostIp !== undefined && !isIP(o.defaultHostIp)) {
    throw new PortfwdOptionError(`defaultHostIp must be an IP address, not "${o.defaultHostIp}"`);
  }
}

function idOf(protocol: string, hostIp: string, port: number): string {
  return `${protocol}/${formatHostPort(hostIp, port)}`;
}

function keyOf(m: PortMapping): string {
  return idOf(m.protocol, m.hostIp, m.hostPort);
}
