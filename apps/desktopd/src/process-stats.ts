/**
 * The daemon's own resource use, for `GET /v1/status` (`process`): what a soak test or an
 * operator watches over hours to tell a leak from a steady state.
 */
import { readdirSync } from "node:fs";

export interface ProcessStats {
  pid: number;
  uptimeSeconds: number;
  /** Bytes, from process.memoryUsage(). */
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** Open file descriptors (/proc/self/fd); undefined where there is no procfs. */
  fds?: number;
  /** Handles and requests keeping the event loop alive (sockets, timers, fs requests...). */
  activeResources: number;
  /** The same, counted by kind (TCPSocketWrap, Timeout, ...): which kind grows, when one does. */
  activeResourcesByType: Record<string, number>;
}

export function processStats(): ProcessStats {
  const mem = process.memoryUsage();
  const resources = process.getActiveResourcesInfo();
  const byType: Record<string, number> = {};
  for (const r of resources) byType[r] = (byType[r] ?? 0) + 1;
  return {
    pid: process.pid,
    uptimeSeconds: Math.round(process.uptime()),
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    heapTotal: mem.heapTotal,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    fds: openFds(),
    activeResources: resources.length,
    activeResourcesByType: byType,
  };
}

function openFds(): number | undefined {
  if (process.platform !== "linux") return undefined;
  try {
    // readdir opens one descriptor of its own for the listing: not counted.
    return readdirSync("/proc/self/fd").length - 1;
  } catch {
    return undefined;
  }
}
