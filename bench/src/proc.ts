/**
 * Child processes for the benchmark: one-shot commands with a hard time limit, and long-running
 * daemons (the peers, the iperf3 server) with a bounded stop. Every child is tracked so that an
 * interrupted run can kill whatever is still alive.
 */
import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";

const live = new Set<ChildProcess>();

/** SIGKILL every child this module started that has not exited yet. */
export function killAllChildren(): void {
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
  live.clear();
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs `cmd` to completion; after `timeoutMs` it is killed and `timedOut` is set. Never rejects on exit status. */
export function run(cmd: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    live.add(child);
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      stderr = tail(stderr + d);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const finish = (code: number | null, signal: NodeJS.Signals | null): void => {
      clearTimeout(timer);
      live.delete(child);
      resolve({ code, signal, stdout, stderr, timedOut });
    };
    child.on("error", (err) => {
      stderr = tail(`${stderr}${err.message}\n`);
      finish(null, null);
    });
    child.on("close", finish);
  });
}

/** Like {@link run} but rejects unless the command exits 0. */
export async function runOk(cmd: string, args: readonly string[], timeoutMs: number): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${describeExit(r)}`);
  return r.stdout;
}

export function describeExit(r: RunResult): string {
  const how = r.timedOut ? "timed out" : r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const err = r.stderr.trim().split("\n").slice(-3).join(" | ");
  return err ? `${how}: ${err}` : how;
}

function tail(s: string, max = 4096): string {
  return s.length > max ? s.slice(s.length - max) : s;
}

/** A long-running child: its output is kept (last few KiB) for error messages. */
export class Daemon {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  private log = "";
  private lineWaiters: Array<(line: string) => void> = [];
  private partial = "";

  constructor(cmd: string, args: readonly string[], stdio: StdioOptions = ["ignore", "pipe", "pipe"]) {
    this.child = spawn(cmd, args, { stdio });
    live.add(this.child);
    this.exited = new Promise((resolve) => {
      this.child.on("close", () => {
        live.delete(this.child);
        resolve();
      });
      this.child.on("error", (err) => {
        this.log = tail(`${this.log}${err.message}\n`);
        live.delete(this.child);
        resolve();
      });
    });
    this.child.stdout?.setEncoding("utf8").on("data", (d: string) => this.onStdout(d));
    this.child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      this.log = tail(this.log + d);
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  /** Last lines of the combined output, for error messages. */
  logTail(lines = 3): string {
    return this.log
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("Failed to send"))
      .slice(-lines)
      .join(" | ");
  }

  /** Resolves with the first stdout line for which `match` holds; rejects on exit or after `timeoutMs`. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${what}: no ready line within ${timeoutMs} ms (${this.logTail() || "no output"})`));
      }, timeoutMs);
      const waiter = (line: string): void => {
        if (!match(line)) return;
        done();
        resolve(line);
      };
      const done = (): void => {
        clearTimeout(timer);
        this.lineWaiters = this.lineWaiters.filter((w) => w !== waiter);
      };
      this.lineWaiters.push(waiter);
      void this.exited.then(() => {
        done();
        reject(new Error(`${what} exited before ready (${this.describeExit()}${this.tailSuffix()})`));
      });
    });
  }

  describeExit(): string {
    const c = this.child;
    return c.signalCode ? `killed by ${c.signalCode}` : `exit ${c.exitCode}`;
  }

  private tailSuffix(): string {
    const t = this.logTail();
    return t ? `: ${t}` : "";
  }

  /** SIGTERM, then SIGKILL if the process has not exited after `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.running) return this.exited;
    this.child.kill("SIGTERM");
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (gaveUp) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }

  private onStdout(d: string): void {
    this.log = tail(this.log + d);
    const lines = (this.partial + d).split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) for (const w of [...this.lineWaiters]) w(line);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 100 ms until it returns true; rejects after `timeoutMs` or when `abort` settles first. */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  abort?: Promise<unknown>,
): Promise<void> {
  let aborted = false;
  void abort?.then(() => {
    aborted = true;
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    if (aborted) throw new Error(`${what}: process exited`);
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}
