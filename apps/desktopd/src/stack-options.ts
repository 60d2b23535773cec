/**
 * The stack's limits, timeouts, source guard and egress rules from `run`'s options: the
 * command line speaks seconds and MiB, the library milliseconds and bytes.
 */
import type { EgressOptions, StackOptions } from "@desktopd/stack";
import type { RunConfig } from "./config.js";

type Limits = Pick<
  RunConfig,
  | "egress"
  | "hostLoopback"
  | "sourceGuard"
  | "udpTimeout"
  | "udpStreamTimeout"
  | "tcpKeepalive"
  | "guestKeepalive"
  | "finWait2Timeout"
  | "bufferMemory"
  | "bufferMemoryPerGuest"
>;

const MiB = 1024 * 1024;
const ms = (s: number | undefined) => (s === undefined ? undefined : s * 1000);

/** Drops undefined values so the library's defaults apply. */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function stackLimits(
  c: Limits,
  namesFor?: EgressOptions["namesFor"],
  base: Pick<StackOptions, "tcp" | "udp"> = {},
): Pick<StackOptions, "egress" | "sourceGuard" | "tcp" | "udp"> {
  const memory = defined({
    totalBytes: c.bufferMemory === undefined ? undefined : c.bufferMemory * MiB,
    perGuestBytes: c.bufferMemoryPerGuest === undefined ? undefined : c.bufferMemoryPerGuest * MiB,
  });
  return {
    egress: { rules: c.egress, hostLoopback: c.hostLoopback, ...(namesFor ? { namesFor } : {}) },
    sourceGuard: c.sourceGuard,
    tcp: {
      ...base.tcp,
      ...defined({
        hostKeepAliveMs: ms(c.tcpKeepalive),
        guestKeepAliveMs: ms(c.guestKeepalive),
        finWait2TimeoutMs: ms(c.finWait2Timeout),
      }),
      ...(Object.keys(memory).length > 0 ? { memory: { ...base.tcp?.memory, ...memory } } : {}),
    },
    udp: {
      ...base.udp,
      ...defined({ idleTimeoutMs: ms(c.udpTimeout), streamTimeoutMs: ms(c.udpStreamTimeout) }),
    },
  };
}
