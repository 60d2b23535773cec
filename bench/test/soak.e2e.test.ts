/**
 * The soak in CI: `npm run soak -- --minutes 1` (bench/dist/soak.js) — one real daemon, a network
 * namespace and a VM under mixed traffic for 60 s. It must judge every metric flat and every
 * traffic check within tolerance, which its exit status and JSON say.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { haveRootAndNetns, missingCommands, skipBecause, vmUnavailableReason } from "@desktopd/stack/testing";
import { afterAll, describe, expect, it } from "vitest";

const env = haveRootAndNetns();
const noVm = env.ok && skipBecause(vmUnavailableReason());
const noTools =
  env.ok &&
  !noVm &&
  skipBecause(missingCommands("curl", "dig", "socat", "iperf3", "dnsmasq", "busybox", "ss"));
const script = fileURLToPath(new URL("../dist/soak.js", import.meta.url));

interface SoakJson {
  passed: boolean;
  problems: string[];
  verdicts: { key: string; verdict: string }[];
  checks: Record<string, { attempts: number; wrong: number; failed: number }>;
  samples: unknown[];
}

describe.skipIf(!env.ok || noVm || noTools)("npm run soak -- --minutes 1", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-soak-e2e-"));
  let child: ChildProcess | undefined;

  afterAll(() => {
    // SIGTERM: the soak's own handler removes its namespace, VM and daemon.
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps desktopd flat and every traffic check passing for a minute", async () => {
    if (!existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`);
    const out = join(dir, "soak.json");
    child = spawn(process.execPath, [script, "--minutes", "1", "--out", out], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout!.setEncoding("utf8").on("data", (s: string) => {
      output += s;
    });
    child.stderr!.setEncoding("utf8").on("data", (s: string) => {
      output += s;
    });
    const code = await new Promise<number | null>((resolve) => child!.on("close", resolve));
    expect(existsSync(out), output).toBe(true);
    const result = JSON.parse(readFileSync(out, "utf8")) as SoakJson;
    expect(result.problems, output).toEqual([]);
    expect(code, output).toBe(0);
    for (const v of result.verdicts)
      expect(["flat", "not judged"], `${v.key}\n${output}`).toContain(v.verdict);
    // Both guests' traffic ran: a lane that never ran would be a problem already; say which one.
    for (const kind of ["netns-download", "vm-download", "publish-vm-download", "vm-dns", "netns-udp"])
      expect(result.checks[kind]?.attempts, kind).toBeGreaterThan(0);
    expect(result.samples.length).toBeGreaterThanOrEqual(20);
  }, 200_000);
});
