/** Writes a run's figures as JSON to bench/results/<timestamp>.json (gitignored). */
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import type { Options } from "./args.js";
import type { SessionResult } from "./metrics.js";
import type { VmSessionResult } from "./vm/metrics.js";

export function writeResults(
  root: string,
  options: Options,
  started: Date,
  results: readonly SessionResult[] | readonly VmSessionResult[],
  extra: Record<string, unknown> = {},
): string {
  const dir = join(root, "bench/results");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${started.toISOString().replace(/[:.]/g, "-")}.json`);
  const doc = {
    started: started.toISOString(),
    options,
    host: {
      kernel: os.release(),
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      node: process.version,
      iperf3: version("iperf3", ["--version"]),
      slirp4netns: version("slirp4netns", ["--version"]),
      passt: version("dpkg-query", ["-W", "passt"])?.replace(/^passt\s+/, ""),
      qemu: options.vm ? version("qemu-system-x86_64", ["--version"]) : undefined,
    },
    results,
    ...extra,
  };
  writeFileSync(path, `${JSON.stringify(doc, null, 2)}\n`);
  return path;
}

function version(cmd: string, args: string[]): string | undefined {
  try {
    const out = execFileSync(cmd, args, {
      encoding: "utf8",
      timeout: 3000,
      stdio: ["ignore", "pipe", "ignore"],
    });
    return out.split("\n")[0]?.trim();
  } catch {
    return undefined;
  }
}
