/**
 * Port forwarding, host → guest: host clients dial 127.0.0.1:HOST_PORT, which the peer forwards
 * to a server in the guest (desktopd `-p`, pasta `-t`, slirp4netns `add_hostfwd`).
 */
import { join } from "node:path";
import { Daemon, describeExit, run } from "../proc.js";
import { connrateConcurrency } from "./connrate.js";
import { type Figure, failed } from "./figure.js";
import { WARMUP_SECONDS } from "./guest.js";

/**
 * Guest ports the forwards lead to: below 1024, because the guest's ephemeral range is widened
 * to 1024–65535 and a connection of an earlier measurement could still hold a port above.
 */
export const GUEST_IPERF_PORT = 901;
export const GUEST_ACCEPT_PORT = 902;

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } };
}

/** iperf3 server in the guest, client on the host through the forward: the host sends. */
export async function measureForwardIperf(netns: string, hostPort: number, seconds: number): Promise<Figure> {
  const server = new Daemon("ip", [
    ...["netns", "exec", netns, "iperf3", "-s", "-1", "-p", String(GUEST_IPERF_PORT), "--forceflush"],
  ]);
  try {
    await server.waitForLine((l) => l.includes("Server listening"), 5000, "guest iperf3 server");
    const args = ["-c", "127.0.0.1", "-p", String(hostPort), "-t", String(seconds), "-O", "1", "-J"];
    const r = await run("iperf3", [...args, "--connect-timeout", "3000"], (seconds + 20) * 1000);
    let json: IperfJson;
    try {
      json = JSON.parse(r.stdout) as IperfJson;
    } catch {
      return failed(`iperf3 client: ${describeExit(r)}`);
    }
    if (json.error) return failed(`iperf3: ${json.error}`);
    const received = json.end?.sum_received?.bits_per_second;
    if (received === undefined) return failed(`iperf3: no summary (${describeExit(r)})`);
    const retransmits = json.end?.sum_sent?.retransmits;
    return { value: received / 1e9, ...(retransmits !== undefined ? { detail: { retransmits } } : {}) };
  } catch (err) {
    return failed(err);
  } finally {
    await server.stop(2000);
  }
}

interface ConnrateReport {
  connections: number;
  errors: number;
  seconds: number;
  perSecond: number;
  firstError?: string;
}

/** Connect+close loops on the host (the same script the guest runs outbound) against a guest server. */
export async function measureForwardConnrate(
  root: string,
  netns: string,
  hostPort: number,
  seconds: number,
): Promise<Figure> {
  const server = new Daemon("ip", [
    ...["netns", "exec", netns, process.execPath, join(root, "bench/guest/acceptclose.mjs")],
    String(GUEST_ACCEPT_PORT),
  ]);
  try {
    await server.waitForLine((l) => l === "listening", 5000, "guest accept-close server");
    const script = join(root, "bench/guest/connrate.mjs");
    const counts = [hostPort, seconds, connrateConcurrency, WARMUP_SECONDS].map(String);
    const args = [script, "127.0.0.1", ...counts];
    const r = await run(process.execPath, args, (WARMUP_SECONDS + seconds + 15) * 1000);
    const last = r.stdout.trim().split("\n").pop() ?? "";
    let report: ConnrateReport & { error?: string };
    try {
      report = JSON.parse(last) as ConnrateReport & { error?: string };
    } catch {
      return failed(`connrate.mjs: ${describeExit(r)}`);
    }
    if (report.error) return failed(report.error);
    if (report.connections === 0)
      return failed(`no connection completed${report.firstError ? `: ${report.firstError}` : ""}`);
    return { value: report.perSecond, detail: { connections: report.connections, errors: report.errors } };
  } catch (err) {
    return failed(err);
  } finally {
    await server.stop(2000);
  }
}
