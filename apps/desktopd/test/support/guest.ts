/**
 * One guest per test file: a fresh network namespace with the daemon attached, torn down in
 * afterAll whatever happened. Also small helpers to run shell pipelines inside the guest.
 */
import { createNetns, type ExecResult, type Netns } from "@desktopd/stack/testing";
import { type Daemon, type DaemonOptions, startDaemon } from "./daemon.js";

export interface Guest {
  readonly ns: Netns;
  readonly daemon: Daemon;
  /** Runs `bash -o pipefail -c script` in the guest. Rejects only on timeout. */
  sh(script: string, timeoutMs?: number): Promise<ExecResult>;
  /** Like `sh`, but rejects with stderr and the daemon's state unless the exit code is 0. */
  shOk(script: string, timeoutMs?: number): Promise<string>;
  /**
   * Stops the daemon (rejects unless it exits 0 on SIGTERM) and removes the namespace —
   * the namespace is removed even when stopping fails.
   */
  close(): Promise<void>;
}

export async function startGuest(prefix: string, opts: Omit<DaemonOptions, "netns"> = {}): Promise<Guest> {
  const ns = await createNetns(prefix);
  let daemon: Daemon;
  try {
    daemon = await startDaemon({ ...opts, netns: ns.name });
  } catch (e) {
    await ns.remove();
    throw e;
  }
  const sh = (script: string, timeoutMs = 60_000) =>
    ns.exec("bash", ["-o", "pipefail", "-c", script], { timeoutMs });
  return {
    ns,
    daemon,
    sh,
    async shOk(script, timeoutMs) {
      const r = await sh(script, timeoutMs);
      if (r.code !== 0) {
        throw new Error(
          `guest command failed (code ${r.code}, signal ${r.signal}): ${script}\n${r.stderr.slice(-2000)}\n${daemon.describe()}`,
        );
      }
      return r.stdout;
    },
    async close() {
      try {
        await daemon.stop();
      } finally {
        await ns.remove();
      }
    },
  };
}

/** Quotes one argument for bash. */
export { shellQuote as q } from "@desktopd/stack/testing";
