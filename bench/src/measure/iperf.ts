/**
 * iperf3 throughput: the server listens on the host's loopback (127.0.0.1, or ::1 over IPv6), the
 * client runs in the guest and dials the peer's host-loopback address of that family. `reverse`
 * (-R) makes the host send (host→guest).
 * The figure is the receiver's rate (`end.sum_received`), the first second omitted (-O 1).
 * The VM mode (src/vm/iperf.ts) runs its client in the VM with the same server and parsing.
 */
import { type Family, loopbackOf } from "../family.js";
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

export interface IperfServer {
  port: number;
  stop(): Promise<void>;
}

/** A one-test iperf3 server on the host's loopback of the family, resolved once it listens. */
export async function startIperfServer(family: Family): Promise<IperfServer> {
  const port = await freePort(family);
  const args = ["-s", "-1", "-B", loopbackOf(family), "-p", String(port), "--forceflush"];
  const server = new Daemon("iperf3", args);
  try {
    await server.waitForLine((l) => l.includes("Server listening"), 5000, "iperf3 server");
  } catch (err) {
    await server.stop(2000);
    throw err;
  }
  return { port, stop: () => server.stop(2000) };
}

/** The client's arguments after the program name. */
export function iperfClientArgs(
  hostAddress: string,
  port: number,
  seconds: number,
  reverse: boolean,
  connectTimeoutMs: number,
): string[] {
  const args = ["-c", hostAddress, "-p", String(port), "-t", String(seconds), "-O", "1", "-J"];
  args.push("--connect-timeout", String(connectTimeoutMs));
  if (reverse) args.push("-R");
  return args;
}

/** The receiver's rate from the client's `-J` output; `exit` says how the client ended, for errors. */
export function iperfFigure(output: string, exit: string): Figure {
  let json: IperfJson | undefined;
  try {
    json = JSON.parse(output) as IperfJson;
  } catch {
    return failed(`iperf3 client: ${exit}`);
  }
  if (json.error) return failed(`iperf3: ${json.error}`);
  const received = json.end?.sum_received?.bits_per_second;
  if (received === undefined) return failed(`iperf3: no summary (${exit})`);
  const detail: Record<string, number> = { sentGbps: (json.end?.sum_sent?.bits_per_second ?? 0) / 1e9 };
  const retransmits = json.end?.sum_sent?.retransmits;
  if (retransmits !== undefined) detail.retransmits = retransmits;
  return { value: received / 1e9, detail };
}

/** Where the client runs (a netns, a VM's console): its output and a one-line account of its exit. */
export type IperfClientRunner = (clientArgs: string[]) => Promise<{ output: string; exit: string }>;

/** One iperf3 run against a fresh server on the host's loopback, with the client wherever `runClient` puts it. */
export async function measureIperfWith(
  family: Family,
  hostAddress: string,
  seconds: number,
  reverse: boolean,
  connectTimeoutMs: number,
  runClient: IperfClientRunner,
): Promise<Figure> {
  let server: IperfServer | undefined;
  try {
    server = await startIperfServer(family);
    const r = await runClient(iperfClientArgs(hostAddress, server.port, seconds, reverse, connectTimeoutMs));
    return iperfFigure(r.output, r.exit);
  } catch (err) {
    return failed(err);
  } finally {
    await server?.stop();
  }
}

export function measureIperf(
  netns: string,
  family: Family,
  hostAddress: string,
  seconds: number,
  reverse: boolean,
): Promise<Figure> {
  return measureIperfWith(family, hostAddress, seconds, reverse, 3000, async (client) => {
    const r = await run("ip", ["netns", "exec", netns, "iperf3", ...client], (seconds + 20) * 1000);
    return { output: r.stdout, exit: describeExit(r) };
  });
}
