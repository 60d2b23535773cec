/**
 * SIGINT/SIGTERM handling for the long-running commands: the first signal asks for an orderly
 * shutdown (remove the device, restore files); a second one exits at once, for when cleanup hangs.
 */
import { constants } from "node:os";

export interface ShutdownSignals {
  /** Settles with the first SIGINT or SIGTERM. */
  received: Promise<NodeJS.Signals>;
  /** Stops listening; signals get their default behaviour back. */
  dispose(): void;
}

const SIGNALS: NodeJS.Signals[] = ["SIGINT", "SIGTERM"];

export function listenForShutdown(): ShutdownSignals {
  let first: NodeJS.Signals | undefined;
  let resolve!: (signal: NodeJS.Signals) => void;
  const received = new Promise<NodeJS.Signals>((r) => {
    resolve = r;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (first === undefined) {
      first = signal;
      resolve(signal);
      return;
    }
    // The shell convention for "killed by a signal".
    process.exit(128 + (constants.signals[signal] ?? 0));
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);
  return {
    received,
    dispose() {
      for (const signal of SIGNALS) process.off(signal, onSignal);
    },
  };
}
