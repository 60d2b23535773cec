/**
 * `desktopd run` serving real Linux VMs (Debian's cloud kernel, busybox initramfs, qemu TCG):
 * one over qemu's stream netdev, one over its dgram netdev (vfkit's framing), one through
 * `--stdio` spawned by socat as a VMM wrapper would, next to a network namespace — all on one
 * subnet. Each VM leases, pings the gateway, downloads from the host, and reaches the other guests.
 */

import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bootVm,
  consoleReport,
  createNetns,
  type HostHttpServer,
  haveRootAndNetns,
  type Netns,
  seededSha256,
  skipBecause,
  startHttpServer,
  type TestVm,
  vmUnavailableReason,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { controlRequest } from "../src/control/client.js";
import { CLI_PATH, type Daemon, startDaemon } from "./support/daemon.js";
import { startFarSide } from "./support/far-side.js";
import { startTinyproxy } from "./support/upstreams.js";

const env = haveRootAndNetns();
const noVm = env.ok && skipBecause(vmUnavailableReason());

describe.skipIf(!env.ok || noVm)("desktopd run with VMs", () => {
  let dir: string;
  let ns: Netns;
  let daemon: Daemon;
  let http: HostHttpServer;
  const page = randomBytes(256 * 1024);
  const pageSha = createHash("sha256").update(page).digest("hex");
  const vms: TestVm[] = [];
  // A failed assertion names the consoles: the guest's view of what went wrong.
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      if (vms.length > 0) process.stderr.write(`${consoleReport(vms)}\n`);
    });
  });
  /** Ends the junk datagram peer, if a failed test left it running. */
  let cleanupJunk = () => {};
  let streamVm: TestVm;
  let dgramVm: TestVm;
  let nsAddress: string;

  const sockets = () => ({ qemu: join(dir, "qemu.sock"), vfkit: join(dir, "vfkit.sock") });

  async function leaseAndCheck(vm: TestVm): Promise<string> {
    await vm.sh("udhcpc -i eth0 -q -n -t 10", 60_000);
    const addr = /inet (192\.168\.65\.\d+)\/24/.exec(await vm.sh("ip addr show eth0"));
    expect(addr, vm.consoleTail()).not.toBeNull();
    await vm.sh("ping -c 1 -W 5 192.168.65.1");
    const size = 2 * 1024 * 1024;
    const out = await vm.sh(
      `timeout 120 wget -q -O - http://192.168.65.254:${http.port}/bytes/${size}/11 | sha256sum`,
      150_000,
    );
    expect(out.trim().split(/\s+/)[0]).toBe(seededSha256(size, 11));
    // The gateway's DNS answers the fixed names.
    expect(await vm.sh("nslookup host.docker.internal 192.168.65.1")).toContain("192.168.65.254");
    // The namespace guest on the same switch, directly.
    const peer = await vm.sh(`timeout 60 wget -q -O - http://${nsAddress}:8080/page | sha256sum`);
    expect(peer.trim().split(/\s+/)[0]).toBe(pageSha);
    return addr![1]!;
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "desktopd-vm-e2e-"));
    ns = await createNetns("vmrun");
    http = await startHttpServer();
    const { qemu, vfkit } = sockets();
    daemon = await startDaemon({
      netns: ns.name,
      configure: true,
      args: ["--qemu-socket", qemu, "--vfkit-socket", vfkit, "--control", join(dir, "control.sock")],
    });
    // The namespace guest (configured with the first, reserved, address) serves a page to the VMs.
    nsAddress = daemon.info.address!.split("/")[0]!;
    const www = join(dir, "www");
    mkdirSync(www);
    writeFileSync(join(www, "page"), page);
    ns.spawn("busybox", ["httpd", "-f", "-p", "8080", "-h", www]);
  });

  afterAll(async () => {
    cleanupJunk();
    await Promise.all(vms.map((vm) => vm.close()));
    await daemon?.stop().catch((e: unknown) => console.error(e));
    await http?.close();
    await ns?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("names its sockets on the ready line", () => {
    expect(daemon.info.qemu).toBe(sockets().qemu);
    expect(daemon.info.vfkit).toBe(sockets().vfkit);
  });

  it("serves a VM over qemu's stream netdev", async () => {
    streamVm = await bootVm({
      name: "run-stream",
      netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${sockets().qemu}`,
    });
    vms.push(streamVm);
    await leaseAndCheck(streamVm);
  });

  it("serves a VM over qemu's dgram netdev (vfkit's one-frame-per-datagram)", async () => {
    dgramVm = await bootVm({
      name: "run-dgram",
      netdev: `dgram,id=n0,local.type=unix,local.path=${join(dir, "vm-dgram.sock")},remote.type=unix,remote.path=${sockets().vfkit}`,
    });
    vms.push(dgramVm);
    await leaseAndCheck(dgramVm);
  });

  it("gives a VM its IPv6 address by router advertisement, and answers its ping to the gateway", async () => {
    let address = "";
    for (let i = 0; i < 100 && !address; i++) {
      const out = await streamVm.sh("ip -6 addr show dev eth0");
      // Usable once duplicate address detection is over: no longer "tentative".
      const m = /inet6 (fdc4:f303:9324:[0-9a-f:]+)\/64(.*)/.exec(out);
      address = m && !m[2]!.includes("tentative") ? m[1]! : "";
      if (!address) await new Promise((r) => setTimeout(r, 200));
    }
    expect(address, streamVm.consoleTail()).toMatch(/^fdc4:f303:9324:0:/);
    expect(await streamVm.sh("ping -6 -c 1 -W 5 fdc4:f303:9324::1")).toContain("1 packets received");
    // TCP over IPv6 NAT: 8 MB from a server on the host's ::1, through the host address.
    const http6 = await startHttpServer({ host: "::1" });
    try {
      const size = 8 * 1024 * 1024;
      const sha = await streamVm.sh(
        `timeout 120 wget -q -O - 'http://[fdc4:f303:9324::254]:${http6.port}/bytes/${size}/16' | sha256sum`,
        150_000,
      );
      expect(sha.split(" ")[0], streamVm.consoleTail()).toBe(seededSha256(size, 16));
    } finally {
      await http6.close();
    }
  }, 200_000);

  it("lets the two VMs reach each other directly", async () => {
    const dgramAddr = /inet (192\.168\.65\.\d+)\//.exec(await dgramVm.sh("ip addr show eth0"))![1]!;
    await dgramVm.sh("mkdir -p /www && echo vm-to-vm > /www/hello && (httpd -p 8080 -h /www &)");
    await streamVm.sh(`ping -c 1 -W 5 ${dgramAddr}`);
    const got = await streamVm.sh(`timeout 30 wget -q -O - http://${dgramAddr}:8080/hello`);
    expect(got.trim()).toBe("vm-to-vm");
    // And the other way round.
    const streamAddr = /inet (192\.168\.65\.\d+)\//.exec(await streamVm.sh("ip addr show eth0"))![1]!;
    await dgramVm.sh(`ping -c 1 -W 5 ${streamAddr}`);
  });

  it("carries a bulk download to a VM slower than the host without dropping or resending a frame", async () => {
    const control = join(dir, "control.sock");
    const tcpOf = async () => {
      const s = (await controlRequest(control, "GET", "/v1/status")) as {
        links: { name: string; stats: { drops: Record<string, number> } }[];
        counters: { tcp: { segmentsRetransmitted: number } };
      };
      const queueFull = s.links.reduce((n, l) => n + (l.stats.drops["queue-full"] ?? 0), 0);
      return { queueFull, ...s.counters.tcp };
    };
    const before = await tcpOf();
    const size = 64 * 1024 * 1024;
    const sha = await streamVm.sh(
      `timeout 150 wget -q -O - http://192.168.65.254:${http.port}/bytes/${size}/21 | sha256sum`,
      180_000,
    );
    expect(sha.split(" ")[0], streamVm.consoleTail()).toBe(seededSha256(size, 21));
    const after = await tcpOf();
    // The emulated guest reads far slower than the host sends: its window, not the link's queue,
    // paced the stack, so nothing was dropped on the way and nothing resent.
    expect(after.queueFull - before.queueFull).toBe(0);
    expect(after.segmentsRetransmitted - before.segmentsRetransmitted).toBe(0);
  });

  it("serves its proxy to a VM: explicit at http.docker.internal:3128, and transparent through an upstream", async () => {
    expect(await streamVm.sh("nslookup http.docker.internal 192.168.65.1")).toContain("192.168.65.1");
    // busybox wget takes its proxy from http_proxy; the host address goes to the host directly.
    const explicit = await streamVm.sh(
      `http_proxy=http://192.168.65.1:3128 timeout 30 wget -q -O - http://192.168.65.254:${http.port}/hello/vm-proxy`,
    );
    expect(explicit).toContain("vm-proxy");
    const far = await startFarSide(["web.far.test"], 2);
    const tiny = await startTinyproxy(dir, "vm-tiny");
    try {
      await controlRequest(join(dir, "control.sock"), "PUT", "/v1/proxy", {
        upstream: `http://127.0.0.1:${tiny.port}`,
      });
      const through = await streamVm.sh(`timeout 30 wget -q -O - http://${far.ip}/from-vm`);
      expect(through).toContain("/from-vm");
      expect(readFileSync(tiny.log, "utf8")).toContain(`${far.ip}/from-vm`);
    } finally {
      await controlRequest(join(dir, "control.sock"), "DELETE", "/v1/proxy");
      tiny.child.kill("SIGKILL");
      await far.close();
    }
  });

  it("serves a VM that reboots (a new connection) without a restart", async () => {
    const before = /inet (192\.168\.65\.\d+)\//.exec(await streamVm.sh("ip addr show eth0"))![1]!;
    await streamVm.close();
    const again = await bootVm({
      name: "run-stream-reboot",
      mac: streamVm.mac,
      netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${sockets().qemu}`,
    });
    vms.push(again);
    // Same MAC, same lease.
    expect(await leaseAndCheck(again)).toBe(before);
    streamVm = again;
  });

  it("serves a VM that reboots over dgram (the same local path again) without a restart", async () => {
    const before = /inet (192\.168\.65\.\d+)\//.exec(await dgramVm.sh("ip addr show eth0"))![1]!;
    await dgramVm.close();
    const local = join(dir, "vm-dgram.sock");
    // qemu leaves its bound socket file behind; a new qemu binds the path again.
    rmSync(local, { force: true });
    const again = await bootVm({
      name: "run-dgram-reboot",
      mac: dgramVm.mac,
      netdev: `dgram,id=n0,local.type=unix,local.path=${local},remote.type=unix,remote.path=${sockets().vfkit}`,
    });
    vms.push(again);
    expect(await leaseAndCheck(again)).toBe(before);
    dgramVm = again;
  });

  it("drops a peer that sends a 1 GB length prefix; the others carry on", async () => {
    const bad = connect(sockets().qemu);
    await new Promise<void>((resolve, reject) => bad.once("connect", resolve).once("error", reject));
    const closed = new Promise<void>((resolve) => bad.once("close", () => resolve()));
    bad.on("error", () => {});
    const prefix = Buffer.alloc(4);
    prefix.writeUInt32BE(1 << 30);
    bad.write(Buffer.concat([prefix, randomBytes(1000)]));
    await closed;
    // Garbage to the datagram socket from a bound peer is counted and dropped.
    // Too short for Ethernet, and longer than MTU 1500 allows: counted and dropped.
    const py = [
      "import socket, os, sys",
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
      "s.bind(sys.argv[1])",
      "for n in (1, 5, 13, 9000): s.sendto(os.urandom(n), sys.argv[2])",
      // Stays bound while its link is looked at: a link whose peer is gone is removed.
      "print('sent', flush=True)",
      "sys.stdin.read()",
    ].join("\n");
    const junkPeer = spawn("python3", ["-c", py, join(dir, "junk.sock"), sockets().vfkit], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    cleanupJunk = () => junkPeer.kill();
    await new Promise((resolve) => junkPeer.stdout!.once("data", resolve));
    // The junk peer's link counts each datagram it dropped, by reason.
    type Status = { links: { name: string; stats: { framesIn: number; drops: Record<string, number> } }[] };
    const status = () =>
      JSON.parse(
        execFileSync(
          process.execPath,
          [CLI_PATH, "status", "--json", "--control", join(dir, "control.sock")],
          {
            encoding: "utf8",
          },
        ),
      ) as Status;
    let junk: Status["links"][number] | undefined;
    for (let i = 0; i < 50; i++) {
      junk = status().links.find((l) => l.name.includes("junk.sock"));
      const drops = junk ? Object.values(junk.stats.drops).reduce((a, b) => a + b, 0) : 0;
      if (drops === 4) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    junkPeer.kill();
    expect(junk?.stats, JSON.stringify(status().links)).toMatchObject({
      framesIn: 0,
      drops: { truncated: 3, oversize: 1 },
    });
    expect(daemon.alive(), daemon.describe()).toBe(true);
    await streamVm.sh("ping -c 1 -W 5 192.168.65.1");
    await dgramVm.sh("ping -c 1 -W 5 192.168.65.1");
  });

  it("serves a VM whose link is desktopd's stdio, spawned by a wrapper (socat)", async () => {
    const wrapperSock = join(dir, "wrapper.sock");
    const socat = spawn(
      "socat",
      [`UNIX-LISTEN:${wrapperSock}`, `EXEC:${process.execPath} ${CLI_PATH} run --stdio --log-level warn`],
      { stdio: "inherit" },
    );
    try {
      for (let i = 0; i < 100 && !existsSync(wrapperSock); i++) await new Promise((r) => setTimeout(r, 50));
      const vm = await bootVm({
        name: "run-stdio",
        netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${wrapperSock}`,
      });
      vms.push(vm);
      await vm.sh("udhcpc -i eth0 -q -n -t 10", 60_000);
      await vm.sh("ping -c 1 -W 5 192.168.65.1");
      const size = 1024 * 1024;
      const out = await vm.sh(
        `timeout 60 wget -q -O - http://192.168.65.254:${http.port}/bytes/${size}/5 | sha256sum`,
      );
      expect(out.trim().split(/\s+/)[0]).toBe(seededSha256(size, 5));
    } finally {
      socat.kill();
    }
  });
});

describe.skipIf(!env.ok || noVm)("desktopd run -p with a VM only", () => {
  let dir: string;
  let daemon: Daemon;
  let vm: TestVm;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "desktopd-vm-publish-"));
    // No namespace: published ports lead to the first guest that leases, the VM.
    daemon = await startDaemon({ args: ["--qemu-socket", join(dir, "qemu.sock"), "-p", "127.0.0.1:0:8080"] });
  });

  afterAll(async () => {
    await vm?.close();
    await daemon?.stop().catch((e: unknown) => console.error(e));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("publishes a port of the VM on the host", async () => {
    vm = await bootVm({
      name: "run-publish",
      netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${join(dir, "qemu.sock")}`,
    });
    await vm.sh("udhcpc -i eth0 -q -n -t 10", 60_000);
    await vm.sh("mkdir -p /www && echo published > /www/index.html && (httpd -p 8080 -h /www &)");
    const hostPort = /tcp\/127\.0\.0\.1:(\d+)>8080/.exec(daemon.info.published ?? "")?.[1];
    expect(hostPort, daemon.describe()).toBeDefined();
    const res = await fetch(`http://127.0.0.1:${hostPort}/index.html`);
    expect(await res.text()).toBe("published\n");
  });
});
