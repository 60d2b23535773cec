/**
 * The host's clock jumping under a running daemon, through libfaketime (LD_PRELOAD): the wall
 * clock forward by an hour and by a day (NTP, a user setting the date), alone and together with
 * the monotonic clocks (a process or VM paused and resumed). A connection opened before the jumps
 * keeps carrying data, and new connections, DNS and downloads work after each.
 *
 * Backward jumps are not simulated: libfaketime moves the event loop's coarse monotonic clock with
 * the wall clock, and Node aborts when that goes back (a real monotonic clock never does). The
 * data path reads no wall clock, so a real backward jump of the date cannot reach it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import {
  type HostHttpServer,
  haveRootAndNetns,
  missingCommands,
  seededSha256,
  skipBecause,
  startHttpServer,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Guest, q, startGuest } from "./support/guest.js";

const FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
const env = haveRootAndNetns();
const missingLib = existsSync(FAKETIME_LIB) ? undefined : `${FAKETIME_LIB} (Debian package libfaketime)`;
const ready = env.ok && !skipBecause(missingLib ?? missingCommands("dig", "curl", "python3"));
const FLOODS_PY = fileURLToPath(new URL("./support/floods.py", import.meta.url));
const HOST = "192.168.65.254";
const GATEWAY = "192.168.65.1";

const cases = [
  { name: "the wall clock", offsets: ["+1h", "+1d"], monotonic: false },
  { name: "the monotonic clock", offsets: ["+1h", "+1d"], monotonic: true },
];

describe.skipIf(!ready).each(cases)("the host's clock jumping: $name", ({ offsets, monotonic }) => {
  let dir: string;
  let offsetFile: string;
  let guest: Guest;
  let http: HostHttpServer;
  let echo: Server;
  let echoPort: number;
  let held: ChildProcess;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "desktopd-clock-"));
    offsetFile = join(dir, "faketime");
    writeFileSync(offsetFile, "+0\n");
    http = await startHttpServer();
    echo = createServer((s) => s.on("error", () => {}).pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    echoPort = (echo.address() as { port: number }).port;
    guest = await startGuest("clock", {
      configure: true,
      args: ["--dns-record", "jump.test=10.1.2.3"],
      // Read at every clock call, so writing the file moves the daemon's time at once.
      wrapper: [
        "env",
        `LD_PRELOAD=${FAKETIME_LIB}`,
        `FAKETIME_TIMESTAMP_FILE=${offsetFile}`,
        "FAKETIME_NO_CACHE=1",
        ...(monotonic ? [] : ["FAKETIME_DONT_FAKE_MONOTONIC=1"]),
      ],
    });
  });

  afterAll(async () => {
    held?.kill();
    try {
      await guest?.close();
    } finally {
      await http?.close();
      echo?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  async function serves(tag: string): Promise<void> {
    expect(guest.daemon.alive(), guest.daemon.describe()).toBe(true);
    const size = 1024 * 1024;
    const sha = await guest.shOk(
      `curl -sS --fail --max-time 30 ${q(`${guest.daemon.info.host}:${http.port}/bytes/${size}/9`)} | sha256sum`,
    );
    expect(sha.split(" ")[0], tag).toBe(seededSha256(size, 9));
    expect((await guest.shOk(`dig +short +time=5 +tries=2 @${GATEWAY} jump.test`)).trim(), tag).toBe(
      "10.1.2.3",
    );
  }

  it("keeps an open connection and serves new ones across each jump", async () => {
    await serves("before");
    // One connection opened before the jumps, checked after them.
    held = spawn(
      "ip",
      ["netns", "exec", guest.ns.name, "python3", FLOODS_PY, "hold", HOST, String(echoPort), "1", "0"],
      {
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    const lines = createInterface({ input: held.stdout! })[Symbol.asyncIterator]();
    expect(JSON.parse((await lines.next()).value as string).connected).toBe(1);
    for (const offset of offsets) {
      writeFileSync(offsetFile, `${offset}\n`);
      await new Promise((r) => setTimeout(r, 500));
      await serves(`after ${offset}`);
    }
    held.stdin!.end("\n");
    expect(JSON.parse((await lines.next()).value as string).first_alive).toBe(true);
    await once(held, "exit");
  });
});
