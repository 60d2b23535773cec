/** The figures measured for each (VM peer, MTU) session. */
import type { Figure } from "../measure/figure.js";
import type { VmPeerName } from "./peer.js";

export const vmMetrics = [
  { key: "g2h", label: "iperf3 guest→host", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "h2g", label: "iperf3 host→guest", unit: "Gbit/s", better: "higher", digits: 2 },
  { key: "peakRss", label: "peak RSS", unit: "MiB", better: "lower", digits: 1 },
] as const;

export type VmMetricKey = (typeof vmMetrics)[number]["key"];

export interface VmSessionResult {
  peer: VmPeerName;
  mtu: number;
  addressPlan: string;
  /** The `-netdev` qemu was given. */
  netdev?: string;
  hostAddress?: string;
  /** The guest's lease and link MTU after udhcpc. */
  guestAddress?: string;
  guestMtu?: number;
  /** What the peer reported on start (desktopd's ready line). */
  note?: string;
  /** Serial console log of the VM, for a failed run. */
  consoleLog?: string;
  /** True when qemu itself carries the traffic: there is no separate process to measure. */
  inQemu: boolean;
  /** Set when the peer or the VM did not come up; every figure then fails with it. */
  startError?: string;
  figures: Record<VmMetricKey, Figure>;
}
