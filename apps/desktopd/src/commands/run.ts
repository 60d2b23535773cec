/** `desktopd run`: attach an existing network namespace to the stack until stopped. */
import type { RunConfig } from "../config.js";
import { runDaemon } from "../daemon.js";
import { createLogger } from "../logger.js";
import { listenForShutdown } from "../signals.js";
import type { CliIo } from "./io.js";
import { serveUntilStopped } from "./serve.js";

export async function runCommand(config: RunConfig, io: CliIo): Promise<number> {
  const { logLevel, ...options } = config;
  // With --stdio, stdout carries frames: everything for people goes to stderr.
  const say = options.stdio ? io.err : io.out;
  const logger = createLogger(logLevel);
  // Listen before setup: a Ctrl-C during setup then still cleans up instead of killing us mid-way.
  const signals = listenForShutdown();
  try {
    const handle = await runDaemon({ ...options, logger });
    for (const failure of handle.publishFailures) io.err(`desktopd: publish failed: ${failure.message}\n`);
    say(`${handle.readyLine}\n`);
    if (handle.attachHelp.length > 0) {
      say(
        `Attach a VM with (a second VM needs another mac= and, for dgram, another local.path):\n${handle.attachHelp.map((l) => `  ${l}\n`).join("")}`,
      );
    }
    return await serveUntilStopped(handle, signals, logger);
  } finally {
    signals.dispose();
  }
}
