/** `desktopd run`: serve guests until stopped; SIGHUP re-reads the config file. */
import type { RunConfig, RunOptionsInput } from "../config.js";
import { type DaemonHandle, runDaemon } from "../daemon.js";
import { createLogger } from "../logger.js";
import { listenForShutdown } from "../signals.js";
import type { CliIo } from "./io.js";
import { serveUntilStopped } from "./serve.js";

export interface RunCommandOptions {
  /** The control socket's path unless --control or DESKTOPD_CONTROL names one. */
  defaultControl?: string;
  /** Reads the config file again under the command line, for a reload. */
  reloadOptions?: () => RunOptionsInput;
}

export async function runCommand(
  config: RunConfig,
  io: CliIo,
  options: RunCommandOptions = {},
): Promise<number> {
  const { logLevel, ...rest } = config;
  // With --stdio, stdout carries frames: everything for people goes to stderr.
  const say = rest.stdio ? io.err : io.out;
  const logger = createLogger(logLevel);
  // Listen before setup: a Ctrl-C during setup then still cleans up instead of killing us mid-way.
  const signals = listenForShutdown();
  let handle: DaemonHandle | undefined;
  const onHangup = () => {
    if (!handle) {
      logger.warn({}, "SIGHUP before the daemon was ready: not reloaded");
      return;
    }
    handle.reload().then(
      (report) => {
        if (report.problems.length > 0)
          logger.warn({ problems: report.problems }, "reload: some changes failed");
      },
      (error: unknown) =>
        logger.error({ err: (error as Error).message }, "reload failed; the running config stays as it was"),
    );
  };
  process.on("SIGHUP", onHangup);
  try {
    handle = await runDaemon({
      ...rest,
      logger,
      setLogLevel: (level) => {
        logger.level = level;
      },
      ...(options.defaultControl ? { defaultControl: options.defaultControl } : {}),
      ...(options.reloadOptions ? { reloadOptions: options.reloadOptions } : {}),
    });
    for (const failure of handle.publishFailures) io.err(`desktopd: publish failed: ${failure.message}\n`);
    // Before the ready line: whoever waits for that line has the page's URL by then.
    if (handle.ready.ui) say(`Status page: ${handle.ready.ui}\n`);
    say(`${handle.readyLine}\n`);
    if (handle.attachHelp.length > 0) {
      say(
        `Attach a VM with (a second VM needs another mac= and, for dgram, another local.path):\n${handle.attachHelp.map((l) => `  ${l}\n`).join("")}`,
      );
    }
    return await serveUntilStopped(handle, signals, logger);
  } finally {
    process.off("SIGHUP", onHangup);
    signals.dispose();
  }
}
