/**
 * The root README as a newcomer follows it, on a fresh clone of this working tree in a directory
 * only root can enter: `npm ci`, then `npm start` (quiet but for desktopd's own lines, stopped
 * with Ctrl-C), then every line of "Running the daemon" in order — `npx desktopd` resolving
 * through the bin linked at install. `myguest` becomes a namespace of the test's own; `run`
 * lines are started, waited for and stopped before the next `run`; `events` follows for a
 * moment; every other line must exit 0 against the daemon running then.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { haveRootAndNetns, missingCommands, skipBecause } from "@desktopd/stack/testing";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const env = haveRootAndNetns();
const noGit = env.ok && skipBecause(missingCommands("git", "npm"));
const REPO = new URL("../../../", import.meta.url).pathname;

/** The shell lines of the fenced sh block under `heading`, comments dropped. */
export function readmeLines(markdown: string, heading: string): string[] {
  const section = markdown.slice(markdown.indexOf(`\n${heading}\n`));
  const start = section.indexOf("```sh\n") + "```sh\n".length;
  const block = section.slice(start, section.indexOf("\n```", start));
  return block
    .split("\n")
    .map((l) => l.replace(/\s+#\s.*$/, "").trim())
    .filter((l) => l !== "");
}

interface Background {
  child: ChildProcess;
  out: () => string;
  exited: Promise<number | null>;
}

function background(command: string, cwd: string, vars: NodeJS.ProcessEnv): Background {
  const child = spawn("bash", ["-c", `exec ${command}`], {
    cwd,
    env: vars,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, out: () => out, exited };
}

async function waitForText(b: Background, text: string, ms: number): Promise<void> {
  for (let t = 0; t < ms && !b.out().includes(text); t += 100) {
    if (b.child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(b.out().includes(text), b.out().slice(-3000)).toBe(true);
}

/** The processes below `pid` (npm puts its script's shell in a process group of its own). */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name may hold spaces and parentheses: the fields after the last ")" are safe.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** Ctrl-C as a terminal delivers it: to every process of the command, the innermost first. */
function signalGroup(b: Background, signal: NodeJS.Signals): void {
  for (const pid of [...descendants(b.child.pid!).reverse(), b.child.pid!]) {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

async function stop(b: Background): Promise<void> {
  // It must still be running: a daemon that stopped by itself is a failure to report.
  expect(b.child.exitCode, b.out().slice(-3000)).toBeNull();
  signalGroup(b, "SIGINT");
  const timeout = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), 20_000).unref());
  const code = await Promise.race([b.exited, timeout]);
  if (code === "timeout") signalGroup(b, "SIGKILL");
  // npm ends by the same SIGINT (no code) or reports it as 130, as a shell would; desktopd exits 0.
  expect([0, 130, null], b.out().slice(-3000)).toContain(code);
  expect(b.out()).not.toContain("unexpected error");
}

describe.skipIf(!env.ok || noGit)("the README on a fresh clone", () => {
  const parent = mkdtempSync(join(tmpdir(), "dtd-walk-"));
  const clone = join(parent, "desktopd");
  const ns = `dtdwalk${process.pid}`;
  // A newcomer's shell: none of the npm context this test may run under (`npm test` sets
  // npm_* variables that change how a nested npm runs and forwards signals).
  const vars: NodeJS.ProcessEnv = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) =>
        !/^npm_/i.test(k) &&
        ![
          "INIT_CWD",
          "DESKTOPD_E2E_REQUIRED",
          "DESKTOPD_CONTROL",
          "NODE_OPTIONS",
          "VITEST",
          "VITEST_MODE",
          "VITEST_POOL_ID",
          "VITEST_WORKER_ID",
          "NODE_ENV",
          "TEST",
        ].includes(k),
    ),
  );
  vars.XDG_RUNTIME_DIR = join(parent, "run");
  const running: Background[] = [];

  afterAll(async () => {
    for (const b of running) signalGroup(b, "SIGKILL");
    await run("ip", ["netns", "del", ns]).catch(() => {});
    rmSync(parent, { recursive: true, force: true });
  });

  it("installs, starts quietly and runs every command of 'Running the daemon'", {
    timeout: 600_000,
  }, async () => {
    // Only root can enter: nothing may depend on the checkout's path or its permissions.
    chmodSync(parent, 0o700);
    const { mkdirSync } = await import("node:fs");
    mkdirSync(vars.XDG_RUNTIME_DIR!, { mode: 0o700 });
    // The working tree as it is, tracked changes included (a commit object, nothing touched).
    // A clean tree (CI) is HEAD as it is; `stash create` is only needed, and only run, for a
    // tree with changes (it takes the index lock, which a concurrent git may hold).
    const clean = await run("git", ["-C", REPO, "diff", "--quiet", "HEAD"]).then(
      () => true,
      () => false,
    );
    const stash = clean
      ? ""
      : await run("git", ["-C", REPO, "stash", "create"]).then(
          (r) => r.stdout.trim(),
          (e: { stderr?: string }) => {
            process.stderr.write(
              `readme walk: git stash create failed (${e.stderr?.trim()}); walking HEAD\n`,
            );
            return "";
          },
        );
    const commit = stash || (await run("git", ["-C", REPO, "rev-parse", "HEAD"])).stdout.trim();
    await run("git", ["clone", "-q", "--no-hardlinks", REPO, clone]);
    await run("git", ["-C", clone, "checkout", "-q", commit]);
    await run("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], {
      cwd: clone,
      env: vars,
      maxBuffer: 1 << 24,
    });

    const start = background("npm start", clone, vars);
    running.push(start);
    await waitForText(start, "Attach a VM with", 300_000);
    const before = start.out().slice(0, start.out().indexOf("desktopd ready"));
    // npm's own banner (`> start`, `> node ...`) and nothing from the build.
    const noise = before
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith("> ") && !l.startsWith("{"));
    expect(noise, before).toEqual([]);
    expect(before).not.toMatch(/turbo|Tasks:|cache (hit|miss)|tsup|CLI Building/i);
    await stop(start);

    const readme = readFileSync(join(clone, "README.md"), "utf8");
    const lines = readmeLines(readme, "## Running the daemon").map((l) => l.replaceAll("myguest", ns));
    expect(lines.length).toBeGreaterThan(10);
    let daemon: Background | undefined;
    for (const line of lines) {
      if (/^npx desktopd run\b/.test(line) && !line.includes("--help")) {
        if (daemon) await stop(daemon);
        daemon = background(line, clone, vars);
        running.push(daemon);
        await waitForText(daemon, "desktopd ready", 60_000);
        continue;
      }
      if (/^npx desktopd events\b/.test(line)) {
        const events = background(line, clone, vars);
        running.push(events);
        await new Promise((r) => setTimeout(r, 2000));
        // Still following: it only ends when asked (or when the daemon goes).
        expect(events.child.exitCode, events.out()).toBeNull();
        await stop(events);
        continue;
      }
      const result = await run("bash", ["-o", "pipefail", "-c", line], { cwd: clone, env: vars }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
      expect([line, result.code, result.out.slice(-2000)]).toEqual([line, 0, result.out.slice(-2000)]);
    }
    if (daemon) await stop(daemon);
  });
});
