/** Keeps a daemon running until a signal arrives or its link disappears, then cleans up. */
import type { DaemonHandle, Logger } from "../daemon.js";
import { LinkLostError } from "../errors.js";
import type { ShutdownSignals } from "../signals.js";

/** Resolves with the exit code (0 after a signal); throws LinkLostError if the link went away. */
export async function serveUntilStopped(
  handle: DaemonHandle,
  signals: ShutdownSignals,
  logger: Logger,
): Promise<number> {
  // The TAP's reads may not hold the event loop open on their own; this timer does until we stop.
  const keepAlive = setInterval(() => {}, 1 << 30);
  try {
    const outcome = await Promise.race([
      signals.received.then((signal) => ({ signal })),
      handle.linkClosed.then((loss) => ({ loss })),
    ]);
    if ("signal" in outcome) {
      logger.info({ signal: outcome.signal }, "shutting down");
      await handle.close();
      return 0;
    }
    await handle.close();
    const { link, error, finished } = outcome.loss;
    if (finished) {
      logger.info({ link }, "guest link ended");
      return 0;
    }
    throw new LinkLostError(`${link} went away${error ? `: ${error.message}` : ""}`);
  } finally {
    clearInterval(keepAlive);
  }
}
