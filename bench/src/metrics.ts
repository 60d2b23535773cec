/** The figures measured for each (peer, MTU) session, and how to print and compare them. */
import { type Family, families, familySuffix, type HostAddress } from "./family.js";
import type { Figure } from "./measure/figure.js";
import { flowCount } from "./measure/flows.js";
import type { PeerName } from "./peers/index.js";

/** Measured once per family: the guest dials the host's loopback (127.0.0.1, ::1) through the peer. */
const loopbackMetrics = [
  { key: "g2h", label: "iperf3 guest→host", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "h2g", label: "iperf3 host→guest", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "connRate", label: "TCP connect+close", unit: "conn/s", better: "higher", digits: 0 },
  { key: "rrMedian", label: "1-byte RR median", unit: "µs", better: "lower", digits: 0 },
  { key: "rrP99", label: "1-byte RR p99", unit: "µs", better: "lower", digits: 0 },
] as const;

const udp = "at 1 Gbit/s offered";
const idle = `${flowCount} idle flows:`;
const busy = `${flowCount} busy flows:`;

/** Measured once per session, over IPv4. */
const sessionMetrics = [
  { key: "fwdH2g", label: "fwd iperf3 host→guest", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "fwdConnRate", label: "fwd TCP connect+close", unit: "conn/s", better: "higher", digits: 0 },
  { key: "udpG2h", label: `UDP g→h ${udp}, received`, unit: "Mbit/s", better: "higher", digits: 0 },
  { key: "udpG2hLoss", label: `UDP g→h ${udp}, loss`, unit: "%", better: "lower", digits: 2 },
  { key: "udpH2g", label: `UDP h→g ${udp}, received`, unit: "Mbit/s", better: "higher", digits: 0 },
  { key: "udpH2gLoss", label: `UDP h→g ${udp}, loss`, unit: "%", better: "lower", digits: 2 },
  { key: "peakRss", label: "peak RSS", unit: "MiB", better: "lower", digits: 1 },
  { key: "flowsIdleRss", label: `${idle} RSS`, unit: "MiB", better: "lower", digits: 1 },
  { key: "flowsPerFlowRss", label: "per idle flow", unit: "KiB", better: "lower", digits: 1 },
  { key: "flowsIdleHeap", label: `${idle} V8 heap used`, unit: "MiB", better: "lower", digits: 1 },
  { key: "flowsPerFlowHeap", label: "per idle flow, V8 heap", unit: "KiB", better: "lower", digits: 1 },
  { key: "flowsBusyRss", label: `${busy} RSS`, unit: "MiB", better: "lower", digits: 1 },
  { key: "flowsBusyHeap", label: `${busy} V8 heap used`, unit: "MiB", better: "lower", digits: 1 },
] as const;

/** The V8 heap rows, measured only where the peer is a node process that reports its heap (desktopd). */
export const heapMetricKeys = ["flowsIdleHeap", "flowsPerFlowHeap", "flowsBusyHeap"] as const;

export type LoopbackMetricKey = (typeof loopbackMetrics)[number]["key"];
/** A loopback metric over IPv4 keeps its name ("g2h"); over IPv6 it gains a suffix ("g2hIpv6"). */
type FamilyMetricKey = LoopbackMetricKey | `${LoopbackMetricKey}Ipv6`;
export type MetricKey = FamilyMetricKey | (typeof sessionMetrics)[number]["key"];

export function familyKey(key: LoopbackMetricKey, family: Family): FamilyMetricKey {
  return family === 4 ? key : `${key}Ipv6`;
}

/** The family a metric is measured over, for the loopback metrics; undefined for the others. */
export function familyOfMetric(key: MetricKey): Family | undefined {
  for (const family of families)
    if (loopbackMetrics.some((m) => familyKey(m.key, family) === key)) return family;
  return undefined;
}

/** In table order: the loopback metrics over IPv4, the same over IPv6, then the per-session ones. */
export const metrics = [
  ...families.flatMap((family) =>
    loopbackMetrics.map((m) => ({
      ...m,
      key: familyKey(m.key, family),
      label: `${m.label}${familySuffix(family)}`,
    })),
  ),
  ...sessionMetrics,
];

export const loopbackMetricKeys: readonly LoopbackMetricKey[] = loopbackMetrics.map((m) => m.key);

export interface SessionResult {
  peer: PeerName;
  mtu: number;
  netns: string;
  addressPlan: string;
  /** Where the guest reached the host's loopback over each family, or why it could not. */
  hostAddress?: Record<Family, HostAddress>;
  /** MTU of the guest interface as seen in the netns after the peer configured it. */
  guestMtu?: number;
  /** What the peer reported on start (desktopd's ready line). */
  note?: string;
  /** Figures the peer cannot have by design (desktopd's V8 heap for the others), and why: "—" cells. */
  unavailable?: Partial<Record<MetricKey, string>>;
  /** Set when the peer did not start; every figure then fails with it. */
  startError?: string;
  figures: Record<MetricKey, Figure>;
}
