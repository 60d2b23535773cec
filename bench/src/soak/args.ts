/** Command-line options of `npm run soak`. */
import { parseArgs } from "node:util";

export interface SoakOptions {
  /** Seconds of traffic (--minutes × 60). */
  duration: number;
  /** Seconds between samples of the daemon. */
  interval: number;
  /** Seconds after traffic starts that the leak verdicts leave out. */
  warmup: number;
  /** Where the JSON goes (default bench/results/soak-<time>.json). */
  out?: string;
  /** Also boot the VM guest (default; --no-vm for hosts without qemu). */
  vm: boolean;
  /** Extra node options for the daemon's process (e.g. --max-old-space-size=96). */
  nodeOptions: string[];
}

export const usage = `usage: npm run soak -- --minutes N [--interval S] [--warmup S] [--out FILE] [--no-vm] [--node-option OPT]...
  --minutes      minutes of mixed traffic (decimals allowed; CI runs 1)
  --interval     seconds between samples of the daemon (default: minutes, within 2..30)
  --warmup       seconds of traffic left out of the leak verdicts (default: a quarter of the
                 run, within 15..300)
  --out          write the samples and the verdicts as JSON here (default:
                 bench/results/soak-<time>.json)
  --no-vm        only the network-namespace guest (no qemu on this host)
  --node-option  an option for the daemon's node, repeatable (e.g. --node-option=--max-old-space-size=96)`;

export function parseSoakOptions(argv: readonly string[]): SoakOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      minutes: { type: "string" },
      interval: { type: "string" },
      warmup: { type: "string" },
      out: { type: "string" },
      "no-vm": { type: "boolean", default: false },
      "node-option": { type: "string", multiple: true, default: [] },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  if (values.minutes === undefined) throw new Error("--minutes is required");
  const minutes = Number(values.minutes);
  if (!Number.isFinite(minutes) || minutes < 0.25 || minutes > 24 * 60)
    throw new Error(`--minutes: "${values.minutes}" is not in 0.25..1440`);
  const duration = Math.round(minutes * 60);
  const interval = seconds(values.interval, "--interval", clamp(duration / 60, 2, 30), 1, 600);
  const warmup = seconds(values.warmup, "--warmup", clamp(duration / 4, 15, 300), 0, duration);
  if (warmup >= duration) throw new Error("--warmup must be shorter than the run");
  return {
    duration,
    interval,
    warmup,
    out: values.out,
    vm: !values["no-vm"],
    nodeOptions: values["node-option"],
  };
}

function seconds(raw: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max)
    throw new Error(`${name}: "${raw}" is not in ${min}..${max}`);
  return n;
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
