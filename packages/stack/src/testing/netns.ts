/**
 * Network-namespace helpers for end-to-end tests: a real Linux kernel as the guest.
 *
 * Every package's e2e tests use these to make a throw-away namespace, run guest programs
 * in it (`ip netns exec`), and tear it down again — also when a test fails.
 *
 * @example
 * ```ts
 * const env = haveRootAndNetns();
 * describe.skipIf(!env.ok)("guest", () => {
 *   let ns: Netns;
 *   beforeAll(async () => { ns = await createNetns("demo"); });
 *   afterAll(() => ns?.remove());
 *   it("has loopback", async () => {
 *     const r = await ns.exec("ip", ["-o", "link", "show", "lo"]);
 *     expect(r.stdout).toContain("UP");
 *   });
 * });
 * ```
 */
import { type ChildProcess, type StdioOptions, spawn as spawnChild, spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";

/** What a finished guest command produced. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  /** Exit code, or null when the process was killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ExecOptions {
  /** Kill the command and reject after this many milliseconds. Default 60 000. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string | Buffer;
  /** Extra environment variables (merged over the current environment). */
  env?: Record<string, string>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  /** Default: stdin ignored, stdout and stderr piped. */
  stdio?: StdioOptions;
}

/** A network namespace created for one test file. */
export interface Netns {
  /** The namespace name, e.g. "dtd-dhcp-1234-0". */
  readonly name: string;
  /**
   * Runs `ip netns exec NAME cmd ...args` and resolves when it exits, whatever its exit code.
   * Rejects if it cannot be started or runs longer than `timeoutMs` (it is killed then).
   */
  exec(cmd: string, args?: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a long-running guest process; `remove()` kills it if it is still running. */
  spawn(cmd: string, args?: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Kills what was spawned and every process left in the namespace, deletes it and /etc/netns/NAME. */
  remove(): Promise<void>;
}

const live = new Set<string>();
let counter = 0;
let exitHookInstalled = false;

function run(cmd: string, args: readonly string[]): { code: number | null; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 10_000 });
  return { code: r.error ? -1 : r.status, stderr: r.error ? String(r.error) : r.stderr };
}

function ipNetns(...args: string[]): Promise<ExecResult> {
  return execFile("ip", ["netns", ...args], {});
}

function execFile(cmd: string, args: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawnChild(cmd, args, {
      env: opts.env ? { ...process.env, ...opts.env } : process.env,
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on("data", (b: Buffer) => out.push(b));
    child.stderr?.on("data", (b: Buffer) => err.push(b));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const result: ExecResult = {
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
        code,
        signal,
      };
      if (timedOut) {
        const tail = (result.stderr || result.stdout).slice(-2000);
        reject(new Error(`timed out after ${timeoutMs} ms: ${cmd} ${args.join(" ")}\n${tail}`));
      } else {
        resolve(result);
      }
    });
    if (opts.input !== undefined) {
      child.stdin?.on("error", () => {});
      child.stdin?.end(opts.input);
    }
  });
}

/** Synchronous last-resort cleanup when the test process exits without running afterAll. */
function removeSync(name: string): void {
  const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" }).stdout ?? "";
  for (const pid of pids.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), "SIGKILL");
    } catch {}
  }
  run("ip", ["netns", "del", name]);
  rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
}

/**
 * Creates a network namespace with a unique name `dtd-<prefix>-<pid>-<n>` and brings `lo` up.
 * `prefix` should be short (a few letters): it shows up in `ip netns list`.
 */
export async function createNetns(prefix: string): Promise<Netns> {
  const name = `dtd-${prefix}-${process.pid}-${counter++}`;
  const add = await ipNetns("add", name);
  if (add.code !== 0) throw new Error(`ip netns add ${name} failed: ${add.stderr.trim()}`);
  live.add(name);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on("exit", () => {
      for (const n of live) removeSync(n);
    });
  }
  const children = new Set<ChildProcess>();
  let removed = false;

  const ns: Netns = {
    name,
    exec(cmd, args = [], opts = {}) {
      return execFile("ip", ["netns", "exec", name, cmd, ...args], opts);
    },
    spawn(cmd, args = [], opts = {}) {
      const child = spawnChild("ip", ["netns", "exec", name, cmd, ...args], {
        env: opts.env ? { ...process.env, ...opts.env } : process.env,
        stdio: opts.stdio ?? ["ignore", "pipe", "pipe"],
      });
      children.add(child);
      child.on("exit", () => children.delete(child));
      child.on("error", () => children.delete(child));
      return child;
    },
    async remove() {
      if (removed) return;
      removed = true;
      // `ip netns exec` execs the command, so each child's pid is the guest program itself.
      for (const child of children) {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      // Anything else still running inside this namespace was started by us (the name is ours).
      const pids = await ipNetns("pids", name);
      for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {}
      }
      const del = await ipNetns("del", name);
      rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
      live.delete(name);
      if (del.code !== 0 && existsSync(`/run/netns/${name}`)) {
        throw new Error(`ip netns del ${name} failed: ${del.stderr.trim()}`);
      }
    },
  };

  const lo = await ns.exec("ip", ["link", "set", "lo", "up"]);
  if (lo.code !== 0) {
    await ns.remove();
    throw new Error(`bringing lo up in ${name} failed: ${lo.stderr.trim()}`);
  }
  return ns;
}

let probed: { ok: boolean; reason?: string } | undefined;

/**
 * Whether this process can run namespace e2e tests: Linux, root, `ip netns` works and
 * /dev/net/tun exists. When not, the reason is printed loudly to stderr (once per process)
 * so a skipped e2e suite is never mistaken for a passing one. Set `DESKTOPD_E2E_REQUIRED=1`
 * (e.g. in CI) to make a missing capability an error instead of a skip.
 */
export function haveRootAndNetns(): { ok: boolean; reason?: string } {
  if (probed) return probed;
  probed = probe();
  if (!probed.ok) skipBecause(probed.reason);
  return probed;
}

/**
 * For any other prerequisite of an e2e suite (a tool, a kernel for the test VM): true when
 * `reason` says something is missing, after saying so as loudly as haveRootAndNetns does —
 * or throwing under `DESKTOPD_E2E_REQUIRED=1`, where a skip would pass for a success.
 */
export function skipBecause(reason: string | undefined): boolean {
  if (reason === undefined) return false;
  const msg = `e2e tests SKIPPED: ${reason}`;
  if (process.env.DESKTOPD_E2E_REQUIRED === "1") throw new Error(`${msg} (DESKTOPD_E2E_REQUIRED=1)`);
  const bar = "!".repeat(Math.min(100, msg.length + 8));
  process.stderr.write(`\n${bar}\n!!! ${msg}\n${bar}\n\n`);
  return true;
}

/** The commands of `cmds` missing from the PATH, as a reason for skipBecause, or undefined. */
export function missingCommands(...cmds: string[]): string | undefined {
  const missing = cmds.filter((c) => !haveCommand(c));
  return missing.length > 0 ? `missing command(s): ${missing.join(", ")}` : undefined;
}

function probe(): { ok: boolean; reason?: string } {
  if (process.platform !== "linux") return { ok: false, reason: `needs Linux, this is ${process.platform}` };
  if (process.getuid?.() !== 0)
    return { ok: false, reason: "needs root (network namespaces and TAP devices)" };
  if (!existsSync("/dev/net/tun")) return { ok: false, reason: "/dev/net/tun is missing" };
  const name = `dtd-probe-${process.pid}`;
  const add = run("ip", ["netns", "add", name]);
  if (add.code !== 0) return { ok: false, reason: `'ip netns add' failed: ${add.stderr.trim()}` };
  run("ip", ["netns", "del", name]);
  return { ok: true };
}

/** Whether `cmd` is on PATH (for tests that need an optional guest tool such as hping3). */
export function haveCommand(cmd: string): boolean {
  return run("sh", ["-c", `command -v ${JSON.stringify(cmd)}`]).code === 0;
}

/** Waits until something in `ns` listens on TCP ("t") or UDP ("u") `port` (asks `ss`). */
export async function waitForListener(ns: Netns, proto: "t" | "u", port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await ns.exec("ss", [`-ln${proto}`, `sport = :${port}`]);
    if (r.stdout.includes(`:${port}`)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listens on ${proto === "t" ? "tcp" : "udp"} port ${port} in the guest`);
}
