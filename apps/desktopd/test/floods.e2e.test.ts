/**
 * Floods and faults from a hostile guest, driven by the guest's own kernel and tools: SYN scans
 * answered by the guest's RSTs, UDP to 10,000 ports, a DHCP DISCOVER flood, fragments that never
 * complete, 1000 connections to a host server that never reads. After each, the daemon is up,
 * its tables are within their bounds, and guests are served as before.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
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
import type { DaemonStatus } from "../src/commands/control.js";
import { controlRequest } from "../src/control/client.js";
import { type Guest, q, startGuest } from "./support/guest.js";
import { untilSteady } from "./support/settle.js";
import { startUdpEchoServer, type UdpEchoServer } from "./support/udp-echo.js";

const env = haveRootAndNetns();
const tools = env.ok && !skipBecause(missingCommands("hping3", "dig", "busybox", "python3"));
const FLOODS_PY = fileURLToPath(new URL("./support/floods.py", import.meta.url));
const HOST = "192.168.65.254";
const GATEWAY = "192.168.65.1";
const PER_GUEST_MIB = 16;

interface Status extends DaemonStatus {
  counters: {
    tcp: { open: number; pendingConnects: number; refused: number };
    udp: { open: number };
    memory: { usedBytes: number; perGuestBytes: number };
    drops: Record<string, number>;
  };
}

/** A python flood helper in the guest whose stdin we hold: it prints a JSON line per step. */
function holdInGuest(
  ns: string,
  args: string[],
): { child: ChildProcess; next(): Promise<Record<string, unknown>> } {
  const child = spawn("ip", ["netns", "exec", ns, "python3", FLOODS_PY, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    child,
    async next() {
      const line = await lines.next();
      if (line.done) throw new Error(`flood helper ended: ${stderr}`);
      return JSON.parse(line.value) as Record<string, unknown>;
    },
  };
}

describe.skipIf(!tools)("floods from a hostile guest", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-floods-"));
  const control = join(dir, "control.sock");
  let guest: Guest;
  let http: HostHttpServer;
  let udpEcho: UdpEchoServer;
  let url: string;
  const status = () => controlRequest(control, "GET", "/v1/status") as Promise<Status>;

  beforeAll(async () => {
    http = await startHttpServer();
    udpEcho = await startUdpEchoServer();
    url = `http://${HOST}:${http.port}`;
    guest = await startGuest("flood", {
      configure: true,
      args: ["--control", control, "--buffer-memory-per-guest", String(PER_GUEST_MIB)],
    });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await http?.close();
      await udpEcho?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** The daemon is up and serves TCP (a checked download), DNS and UDP as before. */
  async function stillServes(tag: string): Promise<void> {
    expect(guest.daemon.alive(), guest.daemon.describe()).toBe(true);
    const size = 2 * 1024 * 1024;
    const sha = await guest.shOk(
      `curl -sS --fail --max-time 60 ${q(`${url}/bytes/${size}/${tag.length}`)} | sha256sum`,
    );
    expect(sha.split(" ")[0], tag).toBe(seededSha256(size, tag.length));
    const answer = await guest.shOk(`dig +short +time=5 +tries=2 @${GATEWAY} host.docker.internal`);
    expect(answer.trim(), tag).toBe(HOST);
  }

  it("a SYN scan of the gateway and of the host address, answered by the guest kernel's RSTs", async () => {
    for (const target of [GATEWAY, HOST]) {
      const r = await guest.sh(`hping3 --scan 1-3000 -S ${target}`, 90_000);
      expect(r.stdout + r.stderr, target).toContain("Done.");
    }
    // The last host connects settle within the connect timeout at most.
    let s = await status();
    for (let i = 0; i < 100 && s.counters.tcp.pendingConnects > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      s = await status();
    }
    expect(s.counters.tcp.pendingConnects).toBe(0);
    // The gateway's DNS answered on 53; every other port was refused with RST.
    expect(s.counters.tcp.refused).toBeGreaterThan(5000);
    await stillServes("after-syn-scan");
  });

  it("UDP to 10,000 ports keeps the UDP table within the guest's share", async () => {
    // hping3 moves the source port with the destination: 10,000 flows from one guest.
    await guest.sh(`hping3 --udp -p ++1 -c 10000 -i u100 -q ${HOST}`, 120_000);
    const s = await status();
    expect(s.counters.udp.open).toBeLessThanOrEqual(2048);
    expect(s.counters.drops["udp-guest-share-evicted"]).toBeGreaterThan(0);
    // One host socket per flow at most: the descriptors stay bounded too.
    expect(s.process?.fds).toBeLessThan(2048 + 256);
    const reply = await guest.shOk(
      `python3 -c ${q(`import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(5);s.sendto(b"x"*8000,("${HOST}",${udpEcho.port}));print(len(s.recv(9000)))`)}`,
    );
    expect(reply.trim()).toBe("8005");
    await stillServes("after-udp-scan");
  });

  it("a DHCP DISCOVER flood from 600 made-up MACs leaves a new NIC its lease", async () => {
    await guest.shOk(`python3 ${q(FLOODS_PY)} dhcp-flood eth0 600`);
    await guest.shOk("ip link add mv0 link eth0 type macvlan mode private && ip link set mv0 up");
    try {
      const out = await guest.shOk("busybox udhcpc -i mv0 -n -q -t 4 -T 2 -s /bin/true 2>&1", 60_000);
      const leased = /lease of (\S+) obtained/.exec(out)?.[1];
      expect(leased, out).toMatch(/^192\.168\.65\.\d+$/);
      const mac = (await guest.shOk("cat /sys/class/net/mv0/address")).trim();
      expect((await status()).leases.find((l) => l.mac === mac)?.ip).toBe(leased);
    } finally {
      await guest.sh("ip link del mv0");
    }
  });

  it("fragments that never complete are dropped within the reassembly bounds", async () => {
    await guest.shOk(`ping -c 1 -W 5 ${GATEWAY}`);
    const gwMac = (await guest.shOk(`ip neigh show ${GATEWAY} dev eth0`)).split(/\s+/)[2]!;
    await guest.shOk(`python3 ${q(FLOODS_PY)} frag-flood eth0 ${gwMac} 192.168.65.3 ${HOST} 2000`);
    // One sender: its own oldest datagrams give way to its newest, within its share of the bounds.
    const s = await untilSteady(status, (x) => x.counters.drops["reassembly-owner-limit"] ?? 0);
    expect(s.counters.drops["reassembly-owner-limit"]).toBeGreaterThan(1000);
    await stillServes("after-fragments");
  });

  it("1000 connections to a host server that never reads stay within the memory budget; other guests keep moving", async () => {
    // The sink takes connections and never reads; its small receive buffer leaves the data with us.
    const sink = spawn("python3", [
      "-c",
      "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_RCVBUF,4096)\n" +
        "s.bind(('127.0.0.1',0))\ns.listen(2048)\nprint(s.getsockname()[1],flush=True)\nc=[]\n" +
        "while True:\n  c.append(s.accept()[0])",
    ]);
    try {
      const [line] = (await once(sink.stdout!, "data")) as [Buffer];
      const sinkPort = Number(line.toString().trim());
      const before = await status();
      const hold = holdInGuest(guest.ns.name, ["hold", HOST, String(sinkPort), "1000", String(512 * 1024)]);
      const held = await hold.next();
      const during = await status();
      const budget = PER_GUEST_MIB * 1024 * 1024;
      expect(during.counters.memory.usedBytes).toBeLessThanOrEqual(budget);
      // Flows over the budget were refused at once (RST), not left hanging.
      expect((held.connected as number) + (held.refused as number), JSON.stringify(held)).toBe(1000);
      expect(held.refused as number).toBeGreaterThan(0);
      expect(during.counters.drops["tcp-memory-budget"]).toBeGreaterThan(0);
      // What the daemon holds grew by about the budget, not by what the guest tried to send.
      expect(before.process && during.process).toBeTruthy();
      expect(during.process!.rss - before.process!.rss).toBeLessThan(budget + 160 * 1024 * 1024);
      // Another guest (its own address) is not affected.
      await guest.shOk("ip link add mv1 link eth0 type macvlan mode private && ip link set mv1 up");
      try {
        const lease = await guest.shOk("busybox udhcpc -i mv1 -n -q -t 4 -T 2 -s /bin/true 2>&1", 60_000);
        const ip = /lease of (\S+) obtained/.exec(lease)![1]!;
        await guest.shOk(`ip addr add ${ip}/24 dev mv1`);
        const size = 8 * 1024 * 1024;
        const sha = await guest.shOk(
          `curl -sS --fail --max-time 60 --interface mv1 ${q(`${url}/bytes/${size}/5`)} | sha256sum`,
        );
        expect(sha.split(" ")[0]).toBe(seededSha256(size, 5));
      } finally {
        await guest.sh("ip link del mv1");
      }
      hold.child.stdin!.end("\n");
      await hold.next().catch(() => undefined);
      await once(hold.child, "exit");
    } finally {
      sink.kill();
    }
    // Once they are gone, the guest is served again.
    await stillServes("after-hold");
  });
});

describe.skipIf(!tools)("a daemon out of file descriptors (ulimit -n 256)", () => {
  let guest: Guest;
  let echo: Server;
  let echoPort: number;

  beforeAll(async () => {
    echo = createServer((s) => s.on("error", () => {}).pipe(s));
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", 2048, r));
    echoPort = (echo.address() as { port: number }).port;
    guest = await startGuest("nofile", {
      configure: true,
      wrapper: ["bash", "-c", 'ulimit -n 256 && exec "$@"', "bash"],
    });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      echo?.close();
    }
  });

  it("refuses new connections, keeps the open ones, and recovers once they close", async () => {
    const hold = holdInGuest(guest.ns.name, ["hold", HOST, String(echoPort), "1000", "0"]);
    const first = await hold.next();
    expect(first.connected as number).toBeGreaterThan(100);
    expect(first.refused as number, JSON.stringify(first)).toBeGreaterThan(500);
    // Refused at once with RST, never left to time out.
    expect(first.failed, JSON.stringify(first)).toBe(0);
    hold.child.stdin!.end("\n");
    expect((await hold.next()).first_alive).toBe(true);
    await once(hold.child, "exit");
    expect(guest.daemon.alive(), guest.daemon.describe()).toBe(true);
    // The descriptors came back: 100 new connections all succeed.
    const again = holdInGuest(guest.ns.name, ["hold", HOST, String(echoPort), "100", "0"]);
    const second = await again.next();
    expect(second.connected, JSON.stringify(second)).toBe(100);
    again.child.stdin!.end("\n");
    expect((await again.next()).first_alive).toBe(true);
    await once(again.child, "exit");
  });
});
