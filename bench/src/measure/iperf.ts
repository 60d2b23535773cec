/**
 * iperf3 throughput: the server listens on the host's 127.0.0.1, the client runs in the guest and
 * dials the peer's host-loopback address. `reverse` (-R) makes the host send (host→guest).
 * The figure is the receiver's rate (`end.sum_received`), the first second omitted (-O 1).
 */
import { Daemon, describeExit, run } from "../proc.js";
import { type Figure, failed } from "./figure.js";
import { freePort } from "./hostserver.js";

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bits_per_second: number };
    sum_sent?: { bits_per_second: number; retransmits?: number };
  };
}

export async function measureIperf(
  netns: string,
  hostAddress: string,
  seconds: number,
  reverse: boolean,
): Promise<Figure> {
  const port = await freePort();
  const server = new Daemon("iperf3", ["-s", "-1", "-B", "127.0.0.1", "-p", String(port), "--forceflush"]);
  try {
    await server.waitForLine((l) => l.includes("Server listening"), 5000, "iperf3 server");
    const args = ["netns", "exec", netns, "iperf3", "-c", hostAddress, "-p", String(port)];
    args.push("-t", String(seconds), "-O", "1", "-J", "--connect-timeout", "3000");
    if (reverse) args.push("-R");
    const r = await run("ip", args, (seconds + 20) * 1000);
    let json: IperfJson | undefined;
    try {
      json = JSON.parse(r.stdout) as IperfJson;
    } catch {
      return failed(`iperf3 client: ${describeExit(r)}`);
    }
    if (json.error) return failed(`iperf3: ${json.error}`);
    const received = json.end?.sum_received?.bits_per_second;
    if (received === undefined) return failed(`iperf3: no summary (${describeExit(r)})`);
    const detail: Record<string, number> = { sentGbps: (json.end?.sum_sent?.bits_per_second ?? 0) / 1e9 };
    const retransmits = json.end?.sum_sent?.retransmits;
    if (retransmits !== undefined) detail.retransmits = retransmits;
    return { value: received / 1e9, detail };
  } catch (err) {
    return failed(err);
  } finally {
    await server.stop(2000);
  }
}
