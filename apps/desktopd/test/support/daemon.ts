/**
 * Runs the built daemon (`apps/desktopd/dist/cli.js run [--netns NAME] ...`) as a child process
 * and waits for its `desktopd ready key=value ...` line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const CLI_PATH = fileURLToPath(new URL("../../dist/cli.js", import.meta.url));

export interface DaemonOptions {
  /** Attach this network namespace (--netns). */
  netns?: string;
  /** Pass --configure (static address, route and resolv.conf in the guest). */
  configure?: boolean;
  /** Further CLI arguments, e.g. ["--mtu", "1400"]. */
  args?: string[];
  /** A command that execs the rest of its arguments, run in front of node (e.g. `unshare -m ...`). */
  wrapper?: string[];
  /**
   * Publish the guests' listening ports automatically (default false here: a test's guest
   * servers, iperf3's for one, must not take host ports other tests and the host side use).
   */
  autoforward?: boolean;
  /** How long to wait for the ready line. Default 30 000 ms. */
  readyTimeoutMs?: number;
  /**
   * Extra environment. Without XDG_RUNTIME_DIR here, the daemon gets a fresh one of its own, so
   * its default control socket never meets a user's daemon or another test's.
   */
  env?: NodeJS.ProcessEnv;
}

export interface Daemon {
  readonly child: ChildProcess;
  /** The key=value pairs of the ready line (netns, ifname, mac, gateway, host, address, mtu...). */
  readonly info: Record<string, string>;
  /** Everything the daemon wrote to stderr so far. */
  stderr(): string;
  /** Everything the daemon wrote to stdout so far (the ready line, the status page's URL...). */
  stdout(): string;
  /** Whether the process is still running. */
  alive(): boolean;
  /** One line for assertion messages: state plus the tail of stderr. */
  describe(): string;
  /** SIGTERM, wait for exit; rejects unless it exits with code 0 within `timeoutMs` (then SIGKILL). */
  stop(timeoutMs?: number): Promise<void>;
}

/** Parses `desktopd ready a=b c=d` into {a: "b", c: "d"}. */
export function parseReadyLine(line: string): Record<string, string> {
  const info: Record<string, string> = {};
  for (const field of line.trim().split(/\s+/).slice(2)) {
    const eq = field.indexOf("=");
    if (eq > 0) info[field.slice(0, eq)] = field.slice(eq + 1);
  }
  return info;
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} is missing: run \`npm run build\` first`);
  const args = [
    CLI_PATH,
    "run",
    ...(opts.netns ? ["--netns", opts.netns] : []),
    ...(opts.configure ? ["--configure"] : []),
    ...(opts.autoforward ? [] : ["--no-autoforward"]),
  ];
  args.push(...(opts.args ?? []));
  const [command, ...argv] = [...(opts.wrapper ?? []), process.execPath, ...args];
  const env = { ...process.env, ...opts.env };
  const ownRuntime =
    opts.env?.XDG_RUNTIME_DIR === undefined ? mkdtempSync(join(tmpdir(), "dtd-run-")) : undefined;
  if (ownRuntime) env.XDG_RUNTIME_DIR = ownRuntime;
  const child = spawn(command!, argv, { stdio: ["ignore", "pipe", "pipe"], env });
  if (ownRuntime) child.on("exit", () => rmSync(ownRuntime, { recursive: true, force: true }));
  let stderr = "";
  let stdout = "";
  child.stderr?.setEncoding("utf8").on("data", (s: string) => {
    stderr += s;
    // Keep memory bounded if the daemon is chatty.
    if (stderr.length > 4_000_000) stderr = stderr.slice(-2_000_000);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  const status = () =>
    child.exitCode === null && child.signalCode === null
      ? `running (pid ${child.pid})`
      : `exited (code ${child.exitCode}, signal ${child.signalCode})`;
  const tail = () => stderr.slice(-3000);

  const info = await new Promise<Record<string, string>>((resolve, reject) => {
    const timeoutMs = opts.readyTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`desktopd not ready after ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${tail()}`));
    }, timeoutMs);
    child.stdout?.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
      const line = stdout.split("\n").find((l) => l.startsWith("desktopd ready"));
      if (line !== undefined && stdout.includes("\n", stdout.indexOf(line))) {
        clearTimeout(timer);
        resolve(parseReadyLine(line));
      }
    });
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`desktopd exited before ready (code ${code}, signal ${signal}); stderr:\n${tail()}`));
    });
  });

  let stopping: Promise<void> | undefined;
  return {
    child,
    info,
    stderr: () => stderr,
    stdout: () => stdout,
    alive: () => child.exitCode === null && child.signalCode === null,
    describe: () => `desktopd ${status()}; stderr tail:\n${tail()}`,
    stop(timeoutMs = 15_000) {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), timeoutMs);
        });
        const result = await Promise.race([exited, timedOut]);
        clearTimeout(timer);
        if (result === "timeout") {
          child.kill("SIGKILL");
          throw new Error(`desktopd did not exit within ${timeoutMs} ms of SIGTERM; stderr:\n${tail()}`);
        }
        if (result.code !== 0) {
          throw new Error(
            `desktopd exited with code ${result.code} (signal ${result.signal}) after SIGTERM; stderr:\n${tail()}`,
          );
        }
      })();
      return stopping;
    },
  };
}
