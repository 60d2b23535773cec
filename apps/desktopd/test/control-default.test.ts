/**
 * Every `desktopd run` serves its control API: the first at the per-user default, the next one
 * beside it; `desktopd ls` finds them, DESKTOPD_CONTROL picks one, and SIGHUP reloads the
 * YAML config file — a broken one leaves the daemon running as it was. Real processes, no root.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { skipBecause } from "@desktopd/stack/testing";
import { afterAll, describe, expect, it } from "vitest";
import { CLI_PATH, type Daemon, startDaemon } from "./support/daemon.js";

const run = promisify(execFile);
const notBuilt = skipBecause(existsSync(CLI_PATH) ? undefined : `${CLI_PATH} is missing: run npm run build`);

describe.skipIf(notBuilt)("control socket by default", () => {
  const xdg = mkdtempSync(join(tmpdir(), "dtd-ctl-"));
  const env = { XDG_RUNTIME_DIR: xdg };
  const runtime = join(xdg, "desktopd");
  const config = join(xdg, "desktopd.yaml");
  const daemons: Daemon[] = [];
  const desktopd = async (args: string[], extra: NodeJS.ProcessEnv = {}) => {
    const { stdout } = await run(process.execPath, [CLI_PATH, ...args], {
      env: { ...process.env, ...env, ...extra },
    });
    return stdout;
  };

  afterAll(async () => {
    await Promise.allSettled(daemons.map((d) => d.stop()));
    rmSync(xdg, { recursive: true, force: true });
  });

  it("serves the first daemon at the default, the second beside it, and lists both", async () => {
    writeFileSync(config, "dns-record:\n  - web.test=10.0.0.1\nlog-level: info\n");
    const first = await startDaemon({
      args: ["--qemu-socket", join(xdg, "a.sock"), "--config", config],
      env,
    });
    daemons.push(first);
    const second = await startDaemon({ args: ["--qemu-socket", join(xdg, "b.sock")], env });
    daemons.push(second);
    expect(first.info.control).toBe(join(runtime, "control.sock"));
    expect(second.info.control).toBe(join(runtime, `control-${second.child.pid}.sock`));

    const listed = JSON.parse(await desktopd(["ls", "--json"])) as {
      control: string;
      pid: number;
      qemu: string[];
    }[];
    expect(listed.map((d) => [d.control, d.pid])).toEqual([
      [first.info.control, first.child.pid],
      [second.info.control, second.child.pid],
    ]);
    // Without --control the CLI talks to the default; DESKTOPD_CONTROL picks another.
    const status = (extra: NodeJS.ProcessEnv = {}) =>
      desktopd(["status", "--json"], extra).then((t) => JSON.parse(t) as { process: { pid: number } });
    expect((await status()).process.pid).toBe(first.child.pid);
    expect((await status({ DESKTOPD_CONTROL: second.info.control })).process.pid).toBe(second.child.pid);
  });

  it("names the socket when --control points at one a live daemon holds", async () => {
    const taken = daemons[0]!.info.control!;
    const error = await run(
      process.execPath,
      [CLI_PATH, "run", "--qemu-socket", join(xdg, "c.sock"), "--control", taken],
      {
        env: { ...process.env, ...env },
      },
    ).catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 1 });
    expect((error as { stderr: string }).stderr).toContain(`${taken} is in use by another desktopd`);
  });

  it("reloads the YAML file on SIGHUP, and keeps running as it was when the file is broken", async () => {
    const first = daemons[0]!;
    const names = async () => JSON.parse(await desktopd(["flows", "--json"])) as unknown[];
    expect(await names()).toEqual([]);
    const port = 20000 + (first.child.pid! % 20000);
    writeFileSync(config, `dns-record:\n  - web.test=10.0.0.2\npublish: "127.0.0.1:${port}:80"\nmtu: 1400\n`);
    first.child.kill("SIGHUP");
    const published = async () => JSON.parse(await desktopd(["publish", "ls", "--json"])) as { id: string }[];
    for (let i = 0; i < 100 && (await published()).length === 0; i++)
      await new Promise((r) => setTimeout(r, 50));
    expect((await published()).map((f) => f.id)).toEqual([`tcp/127.0.0.1:${port}`]);
    await waitFor(() => first.stderr().includes('"restartNeeded":["mtu"]'), first);

    writeFileSync(config, "dns-record: [web.test=\n");
    first.child.kill("SIGHUP");
    await waitFor(() => first.stderr().includes("reload failed; the running config stays as it was"), first);
    expect(first.alive()).toBe(true);
    expect((await published()).map((f) => f.id)).toEqual([`tcp/127.0.0.1:${port}`]);
    // `desktopd reload` says the same, with the reason, and fails.
    const error = await desktopd(["reload"]).catch((e: { code: number; stderr: string }) => e);
    expect(error).toMatchObject({ code: 1 });
    expect((error as { stderr: string }).stderr).toContain("is not valid YAML");
  });
});

async function waitFor(condition: () => boolean, daemon: Daemon): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(condition(), daemon.describe()).toBe(true);
}
