/**
 * What each sample of the daemon holds, and the metrics judged for leaks with their bounds
 * (see verdict.ts for the criterion). Each `abs` is at least 1.5× the largest trend growth seen
 * in steady runs of 1, 3 and 10 minutes here (bench/README.md, "Soak test"): `external` is a GC
 * sawtooth of Buffers 5–25 MiB tall, fds and handles did not move. RSS climbs for 5–6 minutes
 * under this load (V8 grows its heap spaces, malloc its arenas: +25 MiB between 45 s and 180 s)
 * before it stays flat, so it is judged only from 300 s on: shorter runs leave it to the heap,
 * external, fd and handle verdicts.
 */
import { udpTimeoutSeconds } from "./daemon.js";
import type { MetricSpec } from "./verdict.js";

export interface Sample {
  /** Seconds since traffic started. */
  t: number;
  /** VmRSS of /proc/PID/status, MiB. */
  rss: number;
  /** Entries of /proc/PID/fd. */
  fds: number;
  /** From the status API's `process` section (null when the API did not answer). */
  heapUsed: number | null;
  heapTotal: number | null;
  external: number | null;
  arrayBuffers: number | null;
  activeResources: number | null;
  activeResourcesByType?: Record<string, number>;
  /** The stack's open NAT flows (informational: UDP flows live until their idle timeout). */
  tcpOpen: number | null;
  udpOpen: number | null;
  /** Traffic checks so far, and how many failed. */
  checks: number;
  failures: number;
  statusError?: string;
}

export interface JudgedMetric extends MetricSpec {
  value(s: Sample): number | null;
}

/**
 * Each UDP flow of the stack holds one host socket (an fd, a UDPWrap handle) until it has been
 * idle for the UDP timeout, and the guests open new flows all run long: fds and handles are
 * judged net of that population, and the flow count itself from when it can have settled
 * (the timeout plus the stack's 10 s sweep, and a margin).
 */
const udpFlowsSettle = udpTimeoutSeconds + 15;

/** Seconds of traffic after which RSS crept by 2 MiB at most in the slowest run seen (flat from 390 s). */
const rssSettles = 300;

const minus = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);

export const judgedMetrics: readonly JudgedMetric[] = [
  { key: "rss", label: "RSS", unit: "MiB", rel: 0.15, abs: 24, minWarmup: rssSettles, value: (s) => s.rss },
  { key: "heapUsed", label: "heap used", unit: "MiB", rel: 0.2, abs: 8, value: (s) => s.heapUsed },
  { key: "external", label: "external", unit: "MiB", rel: 0.25, abs: 12, value: (s) => s.external },
  {
    key: "fdsBeyondUdp",
    label: "open fds − UDP flows",
    unit: "count",
    rel: 0.1,
    abs: 10,
    value: (s) => minus(s.fds, s.udpOpen),
  },
  {
    key: "handlesBeyondUdp",
    label: "active handles − UDP flows",
    unit: "count",
    rel: 0.1,
    abs: 10,
    value: (s) => minus(s.activeResources, s.udpOpen),
  },
  {
    key: "udpOpen",
    label: "UDP flows",
    unit: "count",
    rel: 0.25,
    abs: 10,
    minWarmup: udpFlowsSettle,
    value: (s) => s.udpOpen,
  },
];

export function pointsOf(samples: readonly Sample[], m: JudgedMetric): { t: number; v: number }[] {
  return samples
    .map((s) => ({ t: s.t, v: m.value(s) }))
    .filter((p): p is { t: number; v: number } => p.v !== null);
}
