/**
 * `npm run bench`: the same netns guest behind desktopd, slirp4netns and pasta in turn, at each
 * MTU; prints one table (with desktopd/peer ratios) and writes the figures as JSON. `--vm` does
 * the same with a VM on desktopd's stream and dgram sockets, passt and qemu's user mode (src/vm/).
 */
import { fileURLToPath } from "node:url";
import { type Options, parseOptions, usage } from "./args.js";
import { cleanupAll, installExitHandlers } from "./cleanup.js";
import type { SessionResult } from "./metrics.js";
import { peers } from "./peers/index.js";
import { type ProxyBench, renderProxyBench, runProxyBench } from "./proxy/run.js";
import { writeResults } from "./results.js";
import { runSession } from "./session.js";
import {
  erraticRetransmits,
  renderFailures,
  renderRetransmits,
  renderTable,
  renderUnavailable,
} from "./table.js";
import { runVmBench } from "./vm/run.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

/**
 * Generous upper bound of one session: five iperf3 runs (both ways over IPv4 and IPv6, and the
 * forwarded one), three connection rates and two RR runs, waiting for the guest's IPv6, start and
 * stop; then two UDP iperf3 runs and the flows (opening 1000 connections, then busy).
 */
function sessionBudgetMs(o: Options): number {
  const short = Math.min(3, o.duration);
  return (5 * (o.duration + 1 + 25) + 5 * (short + 15) + 10 + 40 + 2 * (short + 25) + (short + 100)) * 1000;
}

async function main(): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  if (options.vm) return runVmBench(root, options);
  if (process.getuid?.() !== 0) {
    process.stderr.write("bench: needs root (ip netns, slirp4netns/pasta as root)\n");
    return 2;
  }
  const sessions = options.peers.length * options.mtus.length;
  installExitHandlers(sessions * sessionBudgetMs(options) + 120_000);
  const started = new Date();
  const results: SessionResult[] = [];
  let proxy: ProxyBench | undefined;
  try {
    for (const mtu of options.mtus) {
      for (const name of options.peers) {
        results.push(
          await runSession(peers[name], mtu, { root, duration: options.duration, cpuProf: options.cpuProf }),
        );
      }
    }
    // What the extra hop through desktopd's proxy costs, beside the same client going to the upstream itself.
    if (options.peers.includes("desktopd") && !options.noProxy) {
      process.stderr.write("[bench] proxy: guest through desktopd's proxy, and host, to tinyproxy\n");
      proxy = await runProxyBench(root, Math.min(5, options.duration));
    }
  } finally {
    await cleanupAll();
  }
  const out: string[] = ["", renderTable(results, options.peers, options.mtus), ""];
  out.push(
    "address plans (guest dials the host's 127.0.0.1, and ::1 over IPv6, at the host-loopback address):",
  );
  for (const name of options.peers) out.push(`  ${name}: ${peers[name].addressPlan}`);
  const retrans = renderRetransmits(results);
  if (retrans.length > 0)
    out.push(
      "",
      `iperf3 sender retransmits (* in the table: ${erraticRetransmits} or more, an erratic figure):`,
      ...retrans,
    );
  if (proxy) out.push("", ...renderProxyBench(proxy));
  const unavailable = renderUnavailable(results);
  if (unavailable.length > 0)
    out.push("", "not measured (— in the table):", ...unavailable.map((l) => `  ${l}`));
  const failures = renderFailures(results);
  if (failures.length > 0) out.push("", "failures:", ...failures.map((l) => `  ${l}`));
  out.push("", `${sessions} sessions, iperf3 ${options.duration} s each way (first second omitted)`);
  process.stdout.write(`${out.join("\n")}\n`);
  process.stdout.write(`results: ${writeResults(root, options, started, results, proxy ? { proxy } : {})}\n`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error)?.stack ?? String(err)}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
