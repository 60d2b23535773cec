/** The soak's text report: samples over time, a verdict per metric, the traffic tally, the outcome. */
import { judgedMetrics, type Sample } from "./metrics.js";
import type { SoakResult } from "./run.js";

/** Longer runs print every k-th sample (and the last); the JSON has them all. */
const maxRows = 40;

export function renderReport(r: SoakResult): string {
  const o = r.options;
  const out = [
    "",
    `desktopd soak: ${o.duration} s of traffic, a sample every ${o.interval} s, verdicts on t ≥ ${o.warmup} s`,
    `guests: netns ${r.guests.netns} (${r.guests.netnsAddress})${r.guests.vmAddress ? `, VM ${r.guests.vmAddress} on qemu's stream socket` : ", no VM"}; daemon pid ${r.daemon.pid}`,
    "",
    renderSamples(r.samples),
    "",
    renderVerdicts(r),
    "",
    renderChecks(r),
  ];
  const examples = Object.entries(r.checks).flatMap(([check, e]) =>
    e.examples.map((x) => `  ${check}: ${x}`),
  );
  if (examples.length > 0) out.push("", "failures (first few of each check):", ...examples);
  if (!r.passed) {
    out.push("", "FAIL:", ...r.problems.map((p) => `  ${p}`));
    if (r.daemon.logTail) out.push("", "daemon output (last lines):", `  ${r.daemon.logTail}`);
  } else {
    const unjudged = r.verdicts.filter((v) => v.verdict === "not judged").map((v) => v.key);
    out.push("", "PASS: every judged metric flat after its warm-up, every traffic check within tolerance");
    if (unjudged.length > 0)
      out.push(`(not judged, the run ended before they settle: ${unjudged.join(", ")})`);
  }
  return out.join("\n");
}

function renderSamples(samples: readonly Sample[]): string {
  const step = Math.max(1, Math.ceil(samples.length / maxRows));
  const shown = samples.filter((_, i) => i % step === 0 || i === samples.length - 1);
  const n = (v: number | null, digits: number) => (v === null ? "?" : v.toFixed(digits));
  const rows = shown.map((s) => [
    s.t.toFixed(0),
    n(s.rss, 1),
    n(s.heapUsed, 1),
    n(s.heapTotal, 1),
    n(s.external, 1),
    String(s.fds),
    n(s.activeResources, 0),
    n(s.tcpOpen, 0),
    n(s.udpOpen, 0),
    String(s.checks),
    String(s.failures),
  ]);
  const header = [
    "t s",
    "RSS MiB",
    "heap MiB",
    "heap total",
    "external MiB",
    "fds",
    "handles",
    "tcp flows",
    "udp flows",
    "checks",
    "failed",
  ];
  const note = step > 1 ? `\n(one sample in ${step} of ${samples.length} shown; the JSON has them all)` : "";
  return table([header, ...rows], 0) + note;
}

function renderVerdicts(r: SoakResult): string {
  const rows = r.verdicts.map((v) => {
    const m = judgedMetrics.find((s) => s.key === v.key)!;
    const d = m.unit === "MiB" ? 1 : 0;
    const fixed = (x: number) => (Number.isFinite(x) ? x.toFixed(d) : "–");
    const signed = (x: number) => (v.n === 0 ? "–" : `${x >= 0 ? "+" : ""}${x.toFixed(d)}`);
    return [
      `${m.label} (${m.unit})`,
      `${v.from}`,
      String(v.n),
      fixed(v.median),
      signed(v.growth),
      signed(v.lateGrowth),
      fixed(v.bound),
      v.verdict,
    ];
  });
  const header = [
    "metric",
    "from t s",
    "samples",
    "median",
    "trend growth",
    "late trend",
    "bound",
    "verdict",
  ];
  return [
    table([header, ...rows], 1),
    "(grows: trend growth > bound and late trend > bound/2; bound = max(rel × median, abs); see bench/README.md)",
  ].join("\n");
}

function renderChecks(r: SoakResult): string {
  const rows = Object.entries(r.checks)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([check, e]) => {
      const notes = Object.entries(e.notes)
        .map(([k, v]) => `${k} ${v}`)
        .join(", ");
      return [check, String(e.attempts), String(e.wrong), String(e.failed), mib(e.bytes), notes];
    });
  return table([["traffic check", "attempts", "wrong", "failed", "MiB", "notes"], ...rows], 1);
}

function mib(bytes: number): string {
  return bytes === 0 ? "" : (bytes / 1048576).toFixed(0);
}

/** Columns padded to width: the first `left` left-aligned, the rest right-aligned; a rule under the header. */
function table(rows: string[][], left: number): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) =>
    row
      .map((c, i) => (i < left ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}
