/** Command-line options of `npm run bench`. */
import { parseArgs } from "node:util";
import { type PeerName, peerNames } from "./peers/index.js";

export interface Options {
  peers: PeerName[];
  mtus: number[];
  /** Seconds per iperf3 run. */
  duration: number;
  cpuProf: boolean;
}

export const usage = `usage: npm run bench -- [--only desktopd,slirp4netns,pasta] [--mtu 1500,65520] [--duration SECONDS] [--cpu-prof]
  --only       peers to run, comma-separated (default: all three)
  --mtu        guest MTUs, comma-separated (default: 1500,65520)
  --duration   seconds per iperf3 run (default 5; connection-rate and RR runs take min(3, this))
  --cpu-prof   start desktopd's node with --cpu-prof --cpu-prof-dir=bench/results/prof`;

export function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      only: { type: "string" },
      mtu: { type: "string" },
      duration: { type: "string" },
      "cpu-prof": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const peers = list(values.only ?? peerNames.join(",")).map((p) => {
    if (!(peerNames as readonly string[]).includes(p)) throw new Error(`--only: unknown peer "${p}"`);
    return p as PeerName;
  });
  const mtus = list(values.mtu ?? "1500,65520").map((m) => {
    const n = Number(m);
    if (!Number.isInteger(n) || n < 576 || n > 65520) throw new Error(`--mtu: "${m}" is not in 576..65520`);
    return n;
  });
  const duration = Number(values.duration ?? "5");
  if (!Number.isInteger(duration) || duration < 1 || duration > 120) {
    throw new Error(`--duration: "${values.duration}" is not a whole number of seconds in 1..120`);
  }
  if (peers.length === 0 || mtus.length === 0) throw new Error("--only and --mtu need at least one entry");
  return { peers: [...new Set(peers)], mtus: [...new Set(mtus)], duration, cpuProf: values["cpu-prof"] };
}

function list(s: string): string[] {
  return s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");
}
