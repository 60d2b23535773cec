/**
 * The VM mode's table: one block per MTU, one row per metric, one column per peer, then a ratio
 * column for each desktopd transport against each other peer (desktopd's figure / the peer's).
 */
import { erraticRetransmits, format, ratio, short, show } from "../table.js";
import { type VmSessionResult, vmMetrics } from "./metrics.js";
import type { VmPeerName } from "./peer.js";

const isDesktopd = (p: VmPeerName): boolean => p.startsWith("desktopd");

export function renderVmTable(
  results: readonly VmSessionResult[],
  peers: readonly VmPeerName[],
  mtus: readonly number[],
): string {
  const ours = peers.filter(isDesktopd);
  const others = peers.filter((p) => !isDesktopd(p));
  const pairs = ours.flatMap((d) => others.map((p) => [d, p] as const));
  const header = ["MTU", "metric", "unit", "better", ...peers, ...pairs.map(([d, p]) => `${d}/${p}`)];
  const rows: string[][] = [];
  for (const mtu of mtus) {
    for (const m of vmMetrics) {
      const value = (peer: VmPeerName): number | null =>
        find(results, peer, mtu)?.figures[m.key].value ?? null;
      const cells = peers.map((p) => {
        const r = find(results, p, mtu);
        if (!r) return "n/a";
        if (m.key === "peakRss" && r.inQemu) return "in qemu";
        const f = r.figures[m.key];
        if (f.value === null) return "fail";
        return show(f.value, m.digits) + ((f.detail?.retransmits ?? 0) >= erraticRetransmits ? "*" : "");
      });
      const ratios = pairs.map(([d, p]) => ratio(value(d), value(p)));
      rows.push([String(mtu), m.label, m.unit, m.better, ...cells, ...ratios]);
    }
  }
  return format([header, ...rows]);
}

/** One line per failed figure (qemu's own RSS is not a failure). */
export function renderVmFailures(results: readonly VmSessionResult[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    const where = `${r.peer} mtu ${r.mtu}`;
    if (r.startError) {
      lines.push(`${where}: did not start: ${short(r.startError)}`);
      continue;
    }
    for (const m of vmMetrics) {
      const f = r.figures[m.key];
      if (f.value === null && !(m.key === "peakRss" && r.inQemu))
        lines.push(`${where} ${m.label}: ${short(f.error ?? "failed")}`);
    }
  }
  return lines;
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

function find(
  results: readonly VmSessionResult[],
  peer: VmPeerName,
  mtu: number,
): VmSessionResult | undefined {
  return results.find((r) => r.peer === peer && r.mtu === mtu);
}
