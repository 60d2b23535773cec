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
    /** UDP adds the receiver's datagram counts (iperf3 3.12: to both sums; the receiver's are in sum_received). */
    sum_received?: {
      bits_per_second: number;
      lost_percent?: number;
      lost_packets?: number;
      packets?: number;
    };
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
  omitSeconds = 1,
): string[] {
  const args = [
    "-c",
    hostAddress,
    "-p",
    String(port),
    "-t",
    String(seconds),
    "-O",
    String(omitSeconds),
    "-J",
  ];
  args.push("--connect-timeout", String(connectTimeoutMs));
  if (reverse) args.push("-R");
  return args;
}

/** The client's `-J` output; throws with `exit` (how the client ended) when it has none or reports an error. */
export function parseIperf(output: string, exit: string): IperfJson {
  let json: IperfJson | undefined;
  try {
    json = JSON.parse(output) as IperfJson;
  } catch {
    throw new Error(`iperf3 client: ${exit}`);
  }
  if (json.error) throw new Error(`iperf3: ${json.error}`);
  return json;
}

/** The receiver's rate from the client's `-J` output; `exit` says how the client ended, for errors. */
export function iperfFigure(output: string, exit: string): Figure {
  let json: IperfJson;
  try {
    json = parseIperf(output, exit);
  } catch (err) {
    return failed(err);
  }
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
  try {
    return await withIperfServer(family, async (port) => {
      const r = await runClient(iperfClientArgs(hostAddress, port, seconds, reverse, connectTimeoutMs));
      return iperfFigure(r.output, r.exit);
    });
  } catch (err) {
    return failed(err);
  }
}

/** Runs `use` against a fresh one-test server on the host's loopback of the family, stopped after. */
export async function withIperfServer<T>(family: Family, use: (port: number) => Promise<T>): Promise<T> {
  const server = await startIperfServer(family);
  try {
    return await use(server.port);
  } finally {
    await server.stop();
  }
}

/** The client in the netns: `ip netns exec NETNS iperf3 ARGS`, bounded by the run's length. */
export async function runIperfInNetns(
  netns: string,
  clientArgs: readonly string[],
  seconds: number,
): Promise<{ output: string; exit: string }> {
  const r = await run("ip", ["netns", "exec", netns, "iperf3", ...clientArgs], (seconds + 20) * 1000);
  return { output: r.stdout, exit: describeExit(r) };
}

export function measureIperf(
  netns: string,
  family: Family,
  hostAddress: string,
  seconds: number,
  reverse: boolean,
): Promise<Figure> {
  return measureIperfWith(family, hostAddress, seconds, reverse, 3000, (client) =>
    runIperfInNetns(netns, client, seconds),
  );
}
