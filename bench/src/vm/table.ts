/**
 * The VM mode's table: one block per MTU, one row per metric, one column per peer, then a ratio
 * column for each desktopd transport against each other peer (desktopd's figure / the peer's).
 */
import { renderComparison, renderFailureLines } from "../table.js";
import { type VmMetricKey, type VmSessionResult, vmMetrics } from "./metrics.js";
import type { VmPeerName } from "./peer.js";

const isDesktopd = (p: VmPeerName): boolean => p.startsWith("desktopd");

export function renderVmTable(
  results: readonly VmSessionResult[],
  peers: readonly VmPeerName[],
  mtus: readonly number[],
): string {
  const ours = peers.filter(isDesktopd);
  const others = peers.filter((p) => !isDesktopd(p));
  return renderComparison(results, {
    metrics: vmMetrics,
    peers,
    mtus,
    pairs: ours.flatMap((d) => others.map((p) => [d, p] as const)),
    override: inQemu,
  });
}

/** One line per failed figure (qemu's own RSS is not a failure). */
export function renderVmFailures(results: readonly VmSessionResult[]): string[] {
  return renderFailureLines(results, vmMetrics, (r, key) => inQemu(r, key) !== undefined);
}

/** qemu's user mode runs inside qemu: there is no process of its own to measure. */
function inQemu(r: VmSessionResult, key: VmMetricKey): string | undefined {
  return key === "peakRss" && r.inQemu ? "in qemu" : undefined;
}

/** Guest MTU and sender retransmits per session: the context a throughput figure needs. */
export function renderVmSessions(results: readonly VmSessionResult[]): string[] {
  return results
    .filter((r) => !r.startError)
    .map((r) => {
      const retrans = (["g2h", "h2g"] as const).map((k) => r.figures[k].detail?.retransmits ?? "?").join("/");
      return `  ${r.peer} mtu ${r.mtu}: guest ${r.guestAddress ?? "?"} mtu ${r.guestMtu ?? "?"}, retransmits g2h/h2g ${retrans}`;
    });
}
