/** iperf3 in both directions between the guest and an iperf3 server on the host's 127.0.0.1. */
import { type ChildProcess, spawn } from "node:child_process";
import { closedTcpPort, haveRootAndNetns } from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Guest, startGuest } from "./support/guest.js";

const env = haveRootAndNetns();

interface IperfResult {
  error?: string;
  end?: { sum_sent?: { bytes: number }; sum_received?: { bytes: number } };
}

describe.skipIf(!env.ok)("iperf3 through the stack", () => {
  let guest: Guest;
  let server: ChildProcess | undefined;
  let serverLog = "";
  let port: number;

  beforeAll(async () => {
    port = await closedTcpPort();
    server = spawn("iperf3", ["-s", "--forceflush", "-B", "127.0.0.1", "-p", String(port)], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    server.stdout?.on("data", (b: Buffer) => {
      serverLog += b.toString();
    });
    server.stderr?.on("data", (b: Buffer) => {
      serverLog += b.toString();
    });
    guest = await startGuest("iperf", { configure: true });
    // Wait until the server listens (it prints its banner once the socket is bound).
    for (let i = 0; i < 200 && !serverLog.includes("Server listening"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!serverLog.includes("Server listening")) throw new Error(`iperf3 server did not start: ${serverLog}`);
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      if (server && server.exitCode === null) server.kill("SIGKILL");
    }
  });

  async function run(extra: string): Promise<IperfResult> {
    const r = await guest.sh(`iperf3 -c 192.168.65.254 -p ${port} -t 3 --json ${extra}`, 60_000);
    let result: IperfResult;
    try {
      result = JSON.parse(r.stdout) as IperfResult;
    } catch {
      throw new Error(
        `iperf3 printed no JSON (code ${r.code}): ${r.stdout}${r.stderr}\n${guest.daemon.describe()}`,
      );
    }
    expect(
      result.error,
      `${result.error}\nserver: ${serverLog.slice(-1000)}\n${guest.daemon.describe()}`,
    ).toBeUndefined();
    expect(r.code).toBe(0);
    return result;
  }

  it("guest to host", async () => {
    const result = await run("");
    expect(result.end?.sum_sent?.bytes).toBeGreaterThan(0);
    expect(result.end?.sum_received?.bytes).toBeGreaterThan(0);
  });

  it("host to guest (-R)", async () => {
    const result = await run("-R");
    expect(result.end?.sum_sent?.bytes).toBeGreaterThan(0);
    expect(result.end?.sum_received?.bytes).toBeGreaterThan(0);
  });
});
