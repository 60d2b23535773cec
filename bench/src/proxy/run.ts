/**
 * The proxy rows of `npm run bench`: what the extra hop through desktopd's explicit proxy costs.
 * The same client (bench/guest/proxy-load.mjs) and the same tinyproxy upstream, to the same
 * server on a "far side" namespace behind a veth: once from a netns guest through desktopd's
 * proxy on the gateway (which chains to tinyproxy), once from the host straight to tinyproxy.
 * Requests per second (a new connection each, 8 at a time) and one CONNECT tunnel's throughput.
 */
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { onCleanup } from "../cleanup.js";
import { type Figure, failed } from "../measure/figure.js";
import { runGuestScript } from "../measure/guest.js";
import { createNetns, deleteNetns, hasAddressAndRoute } from "../netns.js";
import { startDesktopd } from "../peers/desktopd.js";
import { Daemon, run, runOk, waitUntil } from "../proc.js";

const FAR_HOST = "10.202.0.1";
const FAR = "10.202.0.2";
const FAR_PORT = 8080;
const CONCURRENCY = 8;

export interface ProxyBench {
  rows: { label: string; unit: string; viaDesktopd: Figure; direct: Figure }[];
}

interface RequestsReport {
  perSecond: number;
  requests: number;
  errors: number;
  firstError?: string;
}
interface TunnelReport {
  mbps: number;
  bytes: number;
}

async function freePort(): Promise<number> {
  const net = await import("node:net");
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

/** Runs the client in `netns` (the guest) or, without one, on the host. */
async function load<T>(root: string, netns: string | undefined, args: (string | number)[], seconds: number) {
  if (netns) return runGuestScript<T>(root, netns, "proxy-load.mjs", args, (seconds + 20) * 1000);
  const r = await run(
    process.execPath,
    [join(root, "bench/guest/proxy-load.mjs"), ...args.map(String)],
    (seconds + 20) * 1000,
  );
  const report = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}") as T & { error?: string };
  if (report.error) throw new Error(`proxy-load.mjs: ${report.error}`);
  return report;
}

async function figure<T>(
  measure: () => Promise<T>,
  value: (r: T) => number,
  detail: (r: T) => Record<string, number>,
): Promise<Figure> {
  try {
    const r = await measure();
    return { value: value(r), detail: detail(r) };
  } catch (error) {
    return failed(error);
  }
}

export async function runProxyBench(root: string, seconds: number): Promise<ProxyBench> {
  const far = `dtdb-far-${process.pid}`;
  const guest = `dtdb-proxy-${process.pid}`;
  const hostIf = `dtdbf${process.pid % 100000}`;
  const undo: (() => Promise<void>)[] = [];
  try {
    await createNetns(far);
    undo.push(onCleanup(`netns ${far}`, () => deleteNetns(far)));
    await runOk("ip", ["link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", far], 5000);
    undo.push(onCleanup(`veth ${hostIf}`, async () => void (await run("ip", ["link", "del", hostIf], 5000))));
    await runOk("ip", ["addr", "add", `${FAR_HOST}/24`, "dev", hostIf], 5000);
    await runOk("ip", ["link", "set", hostIf, "up"], 5000);
    await runOk("ip", ["-n", far, "addr", "add", `${FAR}/24`, "dev", "eth0"], 5000);
    await runOk("ip", ["-n", far, "link", "set", "eth0", "up"], 5000);
    const target = new Daemon("ip", [
      ...["netns", "exec", far, process.execPath],
      ...[join(root, "bench/guest/proxy-target.mjs"), FAR, String(FAR_PORT)],
    ]);
    undo.push(onCleanup("proxy target", () => target.stop(2000)));
    await target.waitForLine((l) => l === "ready", 10_000, "proxy target");

    const tinyPort = await freePort();
    const conf = join(tmpdir(), `desktopd-bench-tinyproxy-${process.pid}.conf`);
    // MaxClients well above the load's concurrency; no log, as a production proxy would be tuned.
    writeFileSync(
      conf,
      `Port ${tinyPort}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nMaxClients 200\nLogLevel Critical\n`,
    );
    const tiny = new Daemon("tinyproxy", ["-d", "-c", conf]);
    undo.push(onCleanup("tinyproxy", () => tiny.stop(2000)));
    await waitUntil(
      async () => (await run("bash", ["-c", `exec 3<>/dev/tcp/127.0.0.1/${tinyPort}`], 2000)).code === 0,
      10_000,
      "tinyproxy",
    );

    await createNetns(guest);
    undo.push(onCleanup(`netns ${guest}`, () => deleteNetns(guest)));
    const session = await startDesktopd({ root, cpuProf: false }, [
      ...["--netns", guest, "--configure"],
      ...["--upstream-proxy", `http://127.0.0.1:${tinyPort}`, "--log-level", "warn"],
    ]);
    undo.push(onCleanup("desktopd", () => session.stop()));
    await waitUntil(() => hasAddressAndRoute(guest, "192.168.65.3"), 10_000, "guest address");

    const via = { ns: guest, host: "192.168.65.1", port: 3128 };
    const direct = { ns: undefined, host: "127.0.0.1", port: tinyPort };
    const requests = (p: typeof via | typeof direct) =>
      figure(
        async () => {
          const burst = (secs: number) =>
            load<RequestsReport>(
              root,
              p.ns,
              [p.host, p.port, FAR, FAR_PORT, secs, "requests", CONCURRENCY],
              secs,
            );
          // A second unmeasured first: the figure is the steady state of a daemon that has been
          // running, not the compiler warming up on a fresh one (30-50 % of a cold run's CPU).
          await burst(1);
          return burst(seconds);
        },
        (r) => r.perSecond,
        (r) => ({ requests: r.requests, errors: r.errors }),
      );
    const tunnel = (p: typeof via | typeof direct) =>
      figure(
        () => load<TunnelReport>(root, p.ns, [p.host, p.port, FAR, FAR_PORT, seconds, "tunnel", 1], seconds),
        (r) => r.mbps / 1000,
        (r) => ({ bytes: r.bytes }),
      );
    return {
      rows: [
        {
          label: `proxied GET requests (new connection each, ${CONCURRENCY} at a time)`,
          unit: "req/s",
          viaDesktopd: await requests(via),
          direct: await requests(direct),
        },
        {
          label: "CONNECT tunnel download",
          unit: "Gbit/s",
          viaDesktopd: await tunnel(via),
          direct: await tunnel(direct),
        },
      ],
    };
  } finally {
    for (const u of undo.reverse()) await u().catch(() => {});
  }
}

export function renderProxyBench(b: ProxyBench): string[] {
  const cell = (f: Figure) =>
    f.value === null ? `failed: ${f.error ?? "?"}` : f.value.toFixed(f.value < 10 ? 2 : 0);
  const lines = [
    "proxy: guest → desktopd's proxy (gateway:3128) → tinyproxy → far side, beside host → tinyproxy → far side",
  ];
  for (const r of b.rows) {
    const ratio =
      r.viaDesktopd.value !== null && r.direct.value
        ? (r.viaDesktopd.value / r.direct.value).toFixed(2)
        : "-";
    lines.push(`  ${r.label}: ${cell(r.viaDesktopd)} vs ${cell(r.direct)} ${r.unit}  (${ratio}×)`);
  }
  return lines;
}
