/**
 * Undo actions for everything the benchmark creates (namespaces, peer processes), run in reverse
 * order at the end of a session, and all at once when the run is interrupted or hits its deadline.
 */
import { killAllChildren } from "./proc.js";

type Undo = () => Promise<void>;

const stack: Array<{ what: string; undo: Undo }> = [];

/** Registers `undo`; the returned function runs it now (once) and unregisters it. */
export function onCleanup(what: string, undo: Undo): () => Promise<void> {
  const entry = { what, undo };
  stack.push(entry);
  return async () => {
    const i = stack.indexOf(entry);
    if (i < 0) return;
    stack.splice(i, 1);
    await entry.undo();
  };
}

/** Runs every registered undo action, newest first, each bounded to 8 s; then kills leftover children. */
export async function cleanupAll(): Promise<void> {
  while (stack.length > 0) {
    const entry = stack.pop()!;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        entry.undo(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("timed out")), 8000);
        }),
      ]);
    } catch (err) {
      process.stderr.write(`cleanup of ${entry.what} failed: ${(err as Error).message}\n`);
    } finally {
      clearTimeout(timer);
    }
  }
  killAllChildren();
}

let exiting = false;

/** True once a signal or the deadline started the exit: errors from what it tears down are expected. */
export function exitInProgress(): boolean {
  return exiting;
}

/** On SIGINT/SIGTERM/SIGHUP, or after `deadlineMs`, clean up and exit with a non-zero status. */
export function installExitHandlers(deadlineMs: number): void {
  const bail = (why: string, code: number): void => {
    if (exiting) return;
    exiting = true;
    process.stderr.write(`\n${why}: cleaning up\n`);
    void cleanupAll().finally(() => process.exit(code));
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(sig, () => bail(`received ${sig}`, 130));
  }
  setTimeout(
    () => bail(`run exceeded its ${Math.round(deadlineMs / 1000)} s limit`, 124),
    deadlineMs,
  ).unref();
}
