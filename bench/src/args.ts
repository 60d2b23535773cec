/** Command-line options of `npm run bench`. */
import { parseArgs } from "node:util";
import { type PeerName, peerNames } from "./peers/index.js";
import { type VmPeerName, vmPeerNames } from "./vm/index.js";

interface CommonOptions {
  mtus: number[];
  /** Seconds per iperf3 run. */
  duration: number;
  cpuProf: boolean;
  /** Skip the proxy rows (desktopd's explicit proxy beside tinyproxy alone). */
  noProxy: boolean;
}

/** Network-namespace guests (the default), or a VM booted on each peer's netdev (`--vm`). */
export type Options =
  | (CommonOptions & { vm: false; peers: PeerName[] })
  | (CommonOptions & { vm: true; peers: VmPeerName[] });

export const usage = `usage: npm run bench -- [--vm] [--only PEER,...] [--mtu 1500,65520] [--duration SECONDS] [--cpu-prof]
  --vm         boot a VM (qemu TCG) on each peer's netdev instead of a netns guest: iperf3 and peak RSS
  --only       peers to run, comma-separated (default: all); without --vm: desktopd, slirp4netns,
               pasta; with --vm: desktopd-stream, desktopd-dgram, passt, qemu-user
  --mtu        guest MTUs, comma-separated (default: 1500,65520)
  --duration   seconds per iperf3 run (default 5; connection-rate and RR runs take min(3, this))
  --cpu-prof   start desktopd's node with --cpu-prof --cpu-prof-dir=bench/results/prof
  --no-proxy   skip the proxy rows (requests/s and CONNECT throughput through desktopd's proxy to tinyproxy)`;

export function parseOptions(argv: readonly string[]): Options {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      only: { type: "string" },
      mtu: { type: "string" },
      duration: { type: "string" },
      "cpu-prof": { type: "boolean", default: false },
      vm: { type: "boolean", default: false },
      "no-proxy": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const names: readonly string[] = values.vm ? vmPeerNames : peerNames;
  const peers = list(values.only ?? names.join(",")).map((p) => {
    if (!names.includes(p)) throw new Error(`--only: unknown peer "${p}" (one of ${names.join(", ")})`);
    return p;
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
  const common = {
    mtus: [...new Set(mtus)],
    duration,
    cpuProf: values["cpu-prof"],
    noProxy: values["no-proxy"],
  };
  const unique = [...new Set(peers)];
  return values.vm
    ? { ...common, vm: true, peers: unique as VmPeerName[] }
    : { ...common, vm: false, peers: unique as PeerName[] };
}

function list(s: string): string[] {
  return s
    .split(",")
    .map((x) => x.trim())
    .filter((x) => x !== "");
}
