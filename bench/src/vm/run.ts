/** `npm run bench -- --vm`: the same VM image on each peer's netdev in turn, at each MTU; table and JSON. */
import { unixDatagramQueueLimit } from "@desktopd/stack";
import type { Options } from "../args.js";
import { cleanupAll, installExitHandlers } from "../cleanup.js";
import { writeResults } from "../results.js";
import { erraticRetransmits } from "../table.js";
import { vmPeers } from "./index.js";
import type { VmSessionResult } from "./metrics.js";
import { runVmSession } from "./session.js";
import { renderVmFailures, renderVmSessions, renderVmTable } from "./table.js";

/** Generous upper bound of one session under TCG: start, boot, lease, two iperf3 runs, stop. */
function sessionBudgetMs(duration: number): number {
  return (15 + 120 + 90 + 2 * (duration + 90 + 5) + 30) * 1000;
}

export async function runVmBench(root: string, options: Options & { vm: true }): Promise<number> {
  const plan = options.mtus.flatMap((mtu) =>
    options.peers
      .map((name) => vmPeers[name])
      .filter((p) => p.fixedMtu === undefined || p.fixedMtu === mtu)
      .map((peer) => ({ peer, mtu })),
  );
  installExitHandlers(plan.length * sessionBudgetMs(options.duration) + 30_000);
  const started = new Date();
  const results: VmSessionResult[] = [];
  try {
    for (const { peer, mtu } of plan) results.push(await runVmSession(peer, mtu, { root, ...options }));
  } finally {
    await cleanupAll();
  }
  const out = ["", renderVmTable(results, options.peers, options.mtus), ""];
  out.push("address plans (guest dials the host's 127.0.0.1 at the host-loopback address):");
  for (const name of options.peers) out.push(`  ${name}: ${vmPeers[name].addressPlan}`);
  for (const name of options.peers) {
    const fixed = vmPeers[name].fixedMtu;
    if (fixed !== undefined && options.mtus.some((m) => m !== fixed))
      out.push(`  n/a: ${name} only runs at MTU ${fixed}`);
  }
  // Datagram netdevs depend on it (see @desktopd/stack's README): a figure without it means little.
  out.push("", `net.unix.max_dgram_qlen: ${unixDatagramQueueLimit() ?? "unknown"}`);
  out.push("", `sessions (* in the table: ${erraticRetransmits} or more sender retransmits):`);
  out.push(...renderVmSessions(results));
  const failures = renderVmFailures(results);
  if (failures.length > 0) out.push("", "failures:", ...failures.map((l) => `  ${l}`));
  out.push(
    "",
    `${results.length} sessions, 1-vCPU qemu TCG guest, iperf3 ${options.duration} s each way (first second omitted)`,
  );
  process.stdout.write(`${out.join("\n")}\n`);
  process.stdout.write(`results: ${writeResults(root, options, started, results)}\n`);
  return 0;
}
