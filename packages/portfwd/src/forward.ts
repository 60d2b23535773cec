/** What a running forward (one host port → one target port) shares with the forwarder. */
import type { Clock, Dialer, Logger, SlabPool } from "@desktopd/core";
import { TargetUnavailableError } from "./errors.js";
import type { PortMapping } from "./spec.js";

/** Live counters of one forward. */
export interface ForwardStats {
  /** TCP connections open now (UDP: client flows open now). */
  open: number;
  /** TCP connections accepted (UDP: flows created) since the forward started. */
  accepted: number;
  /** Dials to the target that failed (refused, unreachable, timed out). */
  dialFailures: number;
  /** Host client → target. */
  bytesIn: number;
  /** Target → host client. */
  bytesOut: number;
  /** UDP datagrams dropped: queue full while dialling, flow evicted, send failed. */
  dropped: number;
}

export function emptyStats(): ForwardStats {
  return { open: 0, accepted: 0, dialFailures: 0, bytesIn: 0, bytesOut: 0, dropped: 0 };
}

/** Events the forwarder emits, with their payloads. */
export interface ForwarderEvents {
  added: { id: string; info: ForwardInfoBase };
  removed: { id: string };
  /** A TCP connection was accepted, or a UDP flow started, from `remote` (the host client). */
  connection: { id: string; remote: string };
  /** A connection or flow ended; `error` when it failed. */
  "connection-closed": { id: string; remote: string; bytesIn: number; bytesOut: number; error?: Error };
  /** The target could not be dialled for a client: the TCP client was reset. */
  "dial-failed": { id: string; remote: string; target: string; error: Error };
}

export interface ForwardInfoBase {
  id: string;
  /** The publish spec this forward came from. */
  spec: string;
  protocol: "tcp" | "udp";
  hostIp: string;
  /** The port listened on (a chosen one when the spec asked for any). */
  hostPort: number;
  /** Target address now (resolved per connection, so it may change), or undefined if not known yet. */
  targetIp: string | undefined;
  targetPort: number;
  /** Who published it when not the user (e.g. "auto"). */
  label?: string;
}

/** Everything a forward needs from its forwarder. */
export interface ForwardContext {
  id: string;
  mapping: PortMapping;
  dialer: Dialer;
  /** The target address, asked at each new connection or flow. */
  resolveTarget: () => string | undefined;
  stats: ForwardStats;
  log: Logger;
  emit: <K extends keyof ForwarderEvents>(event: K, payload: ForwarderEvents[K]) => void;
  /** TCP: close a connection with no traffic either way for this long (default: never). */
  tcpIdleTimeoutMs?: number;
  /** UDP: close a client flow idle this long (default 60 s). */
  udpIdleTimeoutMs: number;
  /** UDP: most client flows at once; the least recently used makes room (default 1024). */
  udpMaxFlows: number;
  clock: Clock;
  /** TCP: client reads are copied here until the target took them (see `joinStreams`). */
  readPool: SlabPool;
}

/** A running forward of either protocol. */
export interface RunningForward {
  /** Binds; resolves with the bound port. Rejects with a typed bind error. */
  start(): Promise<number>;
  /** Stops listening; with `closeConnections`, also ends what is open (TCP reset, UDP flows closed). */
  close(closeConnections: boolean): Promise<void>;
}

export function remoteOf(address: string | undefined, port: number | undefined): string {
  return address?.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Dials the target as it is now. A dialer that throws instead of rejecting rejects here too, so a
 * bad dialer cannot throw out of a listener's event handler.
 */
export function dialTarget<T>(
  ctx: ForwardContext,
  dial: (ip: string, port: number) => Promise<T>,
): { target: string; result: Promise<T> } {
  const ip = ctx.resolveTarget();
  const port = ctx.mapping.targetPort;
  const target = `${ip ?? "?"}:${port}`;
  const result = ip
    ? new Promise<T>((resolve) => resolve(dial(ip, port)))
    : Promise.reject(new TargetUnavailableError("the target address is not known yet (no guest lease)"));
  return { target, result };
}
