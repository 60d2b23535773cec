/**
 * The text table: one block per MTU, one row per metric, one column per peer, then desktopd/peer
 * ratios. A ratio above 1 favours desktopd for "higher" metrics and disfavours it for "lower" ones.
 */
import { families, familySuffix, unavailableReason } from "./family.js";
import type { Figure } from "./measure/figure.js";
import { familyKey, familyOfMetric, type MetricKey, metrics, type SessionResult } from "./metrics.js";
import type { PeerName } from "./peers/index.js";

/** How a metric is printed and compared. */
export interface MetricSpec<K extends string> {
  key: K;
  label: string;
  unit: string;
  better: string;
  digits: number;
}

/** What the renderers need of a session, in either mode. */
export interface Session<P extends string, K extends string> {
  peer: P;
  mtu: number;
  startError?: string;
  figures: Record<K, Figure>;
}

export interface ComparisonOptions<P extends string, K extends string, S extends Session<P, K>> {
  metrics: readonly MetricSpec<K>[];
  peers: readonly P[];
  mtus: readonly number[];
  /** Ratio columns: ours / theirs. */
  pairs: readonly (readonly [P, P])[];
  /** A cell to print instead of the figure (e.g. "in qemu"), or undefined. */
  override?: (session: S, metric: K) => string | undefined;
}

/** The comparison table of either mode: cells per peer, then the ratio columns. */
export function renderComparison<P extends string, K extends string, S extends Session<P, K>>(
  results: readonly S[],
  o: ComparisonOptions<P, K, S>,
): string {
  const header = ["MTU", "metric", "unit", "better", ...o.peers, ...o.pairs.map(([a, b]) => `${a}/${b}`)];
  const rows: string[][] = [];
  for (const mtu of o.mtus) {
    for (const m of o.metrics) {
      const session = (peer: P) => results.find((r) => r.peer === peer && r.mtu === mtu);
      const value = (peer: P): number | null => session(peer)?.figures[m.key].value ?? null;
      const cells = o.peers.map((p) => {
        const s = session(p);
        if (!s) return "n/a";
        const special = o.override?.(s, m.key);
        if (special !== undefined) return special;
        const f = s.figures[m.key];
        if (f.value === null) return "fail";
        const erratic = (f.detail?.retransmits ?? 0) >= erraticRetransmits ? "*" : "";
        return show(f.value, m.digits) + erratic;
      });
      const ratios = o.pairs.map(([a, b]) => ratio(value(a), value(b)));
      rows.push([String(mtu), m.label, m.unit, m.better, ...cells, ...ratios]);
    }
  }
  return format([header, ...rows]);
}

/** One line per failed figure, so the table can stay compact; `expected` marks figures that cannot exist. */
export function renderFailureLines<P extends string, K extends string, S extends Session<P, K>>(
  results: readonly S[],
  specs: readonly MetricSpec<K>[],
  expected: (session: S, metric: K) => boolean = () => false,
): string[] {
  const lines: string[] = [];
  for (const r of results) {
    const where = `${r.peer} mtu ${r.mtu}`;
    if (r.startError) {
      lines.push(`${where}: did not start: ${short(r.startError)}`);
      continue;
    }
    for (const m of specs) {
      const f = r.figures[m.key];
      if (f.value === null && !expected(r, m.key))
        lines.push(`${where} ${m.label}: ${short(f.error ?? "failed")}`);
    }
  }
  return lines;
}

export function renderTable(
  results: readonly SessionResult[],
  peers: readonly PeerName[],
  mtus: readonly number[],
) {
  const others = peers.includes("desktopd") ? peers.filter((p) => p !== "desktopd") : [];
  return renderComparison(results, {
    metrics,
    peers,
    mtus,
    pairs: others.map((p) => ["desktopd", p] as const),
    override: (r, key) => (unavailable(r, key) === undefined ? undefined : "—"),
  });
}

export function renderFailures(results: readonly SessionResult[]): string[] {
  return renderFailureLines(results, metrics, (r, key) => unavailable(r, key) !== undefined);
}

/**
 * Why a session has no figure for `key` by design: the peer offers no host address over its
 * family, or the figure is not one it can have (the V8 heap of a peer that is not node).
 */
function unavailable(r: SessionResult, key: MetricKey): string | undefined {
  const family = familyOfMetric(key);
  return family === undefined ? r.unavailable?.[key] : unavailableReason(r.hostAddress?.[family]);
}

/** One line per session and family the peer offers no host address over, and per other reason: the "—" cells. */
export function renderUnavailable(results: readonly SessionResult[]): string[] {
  return results.flatMap((r) => [
    ...families.flatMap((family) => {
      const reason = unavailableReason(r.hostAddress?.[family]);
      return reason === undefined ? [] : [`${r.peer} mtu ${r.mtu}${familySuffix(family)}: ${reason}`];
    }),
    ...[...new Set(Object.values(r.unavailable ?? {}))].map((reason) => `${r.peer} mtu ${r.mtu}: ${reason}`),
  ]);
}

/** iperf3 runs whose sender retransmitted, one line per session. */
export function renderRetransmits(results: readonly SessionResult[]): string[] {
  const lines: string[] = [];
  for (const r of results) {
    const parts = families
      .flatMap((family) =>
        (["g2h", "h2g"] as const).map((k) => {
          const what = `${k === "g2h" ? "guest→host" : "host→guest"}${familySuffix(family)}`;
          return [what, r.figures[familyKey(k, family)].detail?.retransmits ?? 0] as const;
        }),
      )
      .filter(([, n]) => n > 0)
      .map(([what, n]) => `${what} ${n}`);
    if (parts.length > 0) lines.push(`  ${r.peer} mtu ${r.mtu}: ${parts.join(", ")}`);
  }
  return lines;
}

/** iperf3 cells whose sender retransmitted at least this often are starred. */
export const erraticRetransmits = 100;

/** Fixed digits, but never rounds a small positive figure down to zero. */
export function show(v: number, digits: number): string {
  const fixed = v.toFixed(digits);
  return v > 0 && Number(fixed) === 0 ? v.toPrecision(2) : fixed;
}

export function ratio(ours: number | null, theirs: number | null): string {
  if (ours === null || theirs === null || theirs === 0) return "–";
  return `${(ours / theirs).toFixed(2)}×`;
}

export function short(s: string, max = 160): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

export function format(table: string[][]): string {
  const [header = []] = table;
  const widths = header.map((_, i) => Math.max(...table.map((row) => [...(row[i] ?? "")].length)));
  const line = (row: string[]): string =>
    row
      .map((cell, i) => {
        const pad = " ".repeat((widths[i] ?? 0) - [...cell].length);
        return i < 4 ? cell + pad : pad + cell;
      })
      .join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  const out = [line(header), rule];
  let lastMtu = table[1]?.[0];
  for (const row of table.slice(1)) {
    if (row[0] !== lastMtu) out.push(rule);
    lastMtu = row[0];
    out.push(line(row));
  }
  return out.join("\n");
}
