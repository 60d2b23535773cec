/** Writes a soak's samples, verdicts and tally as JSON (bench/results/ is git-ignored). */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import type { SoakResult } from "./run.js";

export function writeSoakResults(root: string, r: SoakResult, out?: string): string {
  const path = out
    ? resolve(out)
    : join(root, "bench/results", `soak-${r.started.replace(/[:.]/g, "-")}.json`);
  mkdirSync(dirname(path), { recursive: true });
  const host = {
    kernel: os.release(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    node: process.version,
    qemu: r.options.vm ? firstLine("qemu-system-x86_64", ["--version"]) : undefined,
    commit: firstLine("git", ["-C", root, "rev-parse", "HEAD"]),
  };
  writeFileSync(path, `${JSON.stringify({ ...r, host }, null, 2)}\n`);
  return path;
}

function firstLine(cmd: string, args: string[]): string | undefined {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", timeout: 3000, stdio: ["ignore", "pipe", "ignore"] })
      .split("\n")[0]!
      .trim();
  } catch {
    return undefined;
  }
}
