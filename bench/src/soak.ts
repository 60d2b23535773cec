/**
 * `npm run soak -- --minutes N`: one desktopd with a namespace guest and a VM guest under mixed
 * traffic for N minutes, sampled for leaks; prints a report, writes JSON, and exits 1 when a
 * metric grows or a traffic check failed (see src/soak/ and README.md's "Soak test").
 */
import { rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { cleanupAll, exitInProgress, installExitHandlers } from "./cleanup.js";
import { parseSoakOptions, type SoakOptions, usage } from "./soak/args.js";
import { renderReport } from "./soak/report.js";
import { writeSoakResults } from "./soak/results.js";
import { runSoak } from "./soak/run.js";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** Set-up (VM boot under TCG included), the traffic, its last attempts, the teardown. */
function budgetMs(o: SoakOptions): number {
  return (300 + o.duration + 240) * 1000;
}

async function main(): Promise<number> {
  let options: SoakOptions;
  try {
    options = parseSoakOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${usage}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write("soak: needs root (ip netns, a TAP device for the namespace guest)\n");
    return 2;
  }
  installExitHandlers(budgetMs(options));
  let result: Awaited<ReturnType<typeof runSoak>>;
  try {
    result = await runSoak(root, options);
  } finally {
    await cleanupAll();
  }
  process.stdout.write(`${renderReport(result)}\n`);
  process.stdout.write(`samples: ${writeSoakResults(root, result, options.out)}\n`);
  // The VM's console is kept only when it may tell what went wrong (qemu is gone by now).
  const consoleLog = result.guests.vmConsoleLog;
  if (consoleLog && result.passed) rmSync(consoleLog, { force: true });
  else if (consoleLog) process.stdout.write(`VM console: ${consoleLog}\n`);
  return result.passed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (err: unknown) => {
    // Interrupted: the exit handler is tearing everything down and exits with its own status.
    if (exitInProgress()) return;
    process.stderr.write(`soak: ${(err as Error)?.stack ?? String(err)}\n`);
    await cleanupAll();
    process.exit(1);
  },
);
