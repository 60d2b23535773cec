/**
 * The host's side of the soak's traffic, all on loopback: the HTTP server with seeded downloads
 * and hashed uploads (@desktopd/stack/testing), a UDP echo, an iperf3 server, and dnsmasq as the
 * daemon's only upstream (so no query ever leaves the machine).
 */
import { createSocket } from "node:dgram";
import { startDnsmasq } from "@desktopd/dns/testing";
import { startHttpServer } from "@desktopd/stack/testing";
import { onCleanup } from "../cleanup.js";
import { freePort } from "../measure/hostserver.js";
import { Daemon, run, waitUntil } from "../proc.js";
import { upstreamZone } from "./dns-check.js";

export interface HostServers {
  httpPort: number;
  udpEchoPort: number;
  iperfPort: number;
  /** dnsmasq, as `--dns-upstream` wants it. */
  upstream: string;
}

export async function startHostServers(): Promise<HostServers> {
  const http = await startHttpServer();
  onCleanup("host HTTP server", () => http.close());
  const udpEchoPort = await startUdpEcho();
  const iperfPort = await freePort();
  const iperf = new Daemon("iperf3", ["-s", "-B", "127.0.0.1", "-p", String(iperfPort)]);
  onCleanup("iperf3 server", () => iperf.stop());
  await waitUntil(
    async () => (await run("ss", ["-Hltn", `sport = :${iperfPort}`], 3000)).stdout.includes(":"),
    10_000,
    "iperf3 -s",
    iperf.exited,
  );
  const dns = await startDnsmasq([
    `--local=/${upstreamZone}/`,
    // Any name below up.<zone>: unique names per query reach the upstream every time.
    `--address=/up.${upstreamZone}/10.77.0.2`,
  ]);
  onCleanup("dnsmasq", () => dns.stop());
  return { httpPort: http.port, udpEchoPort, iperfPort, upstream: `${dns.host}:${dns.port}` };
}

/**
 * Answers each datagram with its lines, each prefixed `echo:`: a sender whose lines were
 * coalesced into one datagram (a busy guest) still gets every line back. Keeps nothing.
 */
async function startUdpEcho(): Promise<number> {
  const sock = createSocket("udp4");
  sock.on("message", (msg, from) => {
    const lines = msg
      .toString("latin1")
      .split("\n")
      .filter((l) => l !== "");
    sock.send(Buffer.from(lines.map((l) => `echo:${l}\n`).join(""), "latin1"), from.port, from.address);
  });
  sock.on("error", () => {});
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(0, "127.0.0.1", () => resolve());
  });
  onCleanup("UDP echo", () => new Promise<void>((resolve) => sock.close(() => resolve())));
  return sock.address().port;
}
