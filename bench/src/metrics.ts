/** The figures measured for each (peer, MTU) session, and how to print and compare them. */
import type { Figure } from "./measure/figure.js";
import type { PeerName } from "./peers/index.js";

export const metrics = [
  { key: "g2h", label: "iperf3 guest→host", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "h2g", label: "iperf3 host→guest", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "connRate", label: "TCP connect+close", unit: "conn/s", better: "higher", digits: 0 },
  { key: "rrMedian", label: "1-byte RR median", unit: "µs", better: "lower", digits: 0 },
  { key: "rrP99", label: "1-byte RR p99", unit: "µs", better: "lower", digits: 0 },
  { key: "fwdH2g", label: "fwd iperf3 host→guest", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "fwdConnRate", label: "fwd TCP connect+close", unit: "conn/s", better: "higher", digits: 0 },
  { key: "peakRss", label: "peak RSS", unit: "MiB", better: "lower", digits: 1 },
] as const;

export type MetricKey = (typeof metrics)[number]["key"];

export interface SessionResult {
  peer: PeerName;
  mtu: number;
  netns: string;
  addressPlan: string;
  hostAddress?: string;
  /** MTU of the guest interface as seen in the netns after the peer configured it. */
  guestMtu?: number;
  /** What the peer reported on start (desktopd's ready line). */
  note?: string;
  /** Set when the peer did not start; every figure then fails with it. */
  startError?: string;
  figures: Record<MetricKey, Figure>;
}
