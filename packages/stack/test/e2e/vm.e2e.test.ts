/**
 * Real Linux VMs (Debian's cloud kernel under qemu TCG) on the stack's virtual switch: one over
 * qemu's stream netdev, one over its unix datagram netdev (vfkit's framing), and a network
 * namespace on a TAP — three guests on one subnet, each with its own lease.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  connectQemuStream,
  createStack,
  createSwitch,
  listenQemuStream,
  listenUnixDatagram,
  openTap,
  type QemuStreamListener,
  type Stack,
  type UnixDatagramListener,
  type VirtualSwitch,
} from "@desktopd/stack";
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

const env = haveRootAndNetns();
const noVm = env.ok && skipBecause(vmUnavailableReason());

describe.skipIf(!env.ok || noVm)("Linux VMs on the virtual switch", () => {
  let dir: string;
  let stack: Stack;
  let sw: VirtualSwitch;
  let streamListener: QemuStreamListener;
  let dgramListener: UnixDatagramListener;
  let ns: Netns;
  let http: HostHttpServer;
  const vms: TestVm[] = [];
  // A failed assertion names the consoles: the guest's view of what went wrong.
  beforeEach(({ onTestFailed }) => {
    onTestFailed(() => {
      if (vms.length > 0) process.stderr.write(`${consoleReport(vms)}\n`);
    });
  });
  let nsAddress: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "desktopd-vm-"));
    stack = createStack({ subnet: "192.168.65.0/24" });
    sw = createSwitch();
    stack.attach(sw);
    streamListener = await listenQemuStream({ path: join(dir, "qemu.sock") }, (link) => sw.addPort(link));
    dgramListener = await listenUnixDatagram(join(dir, "vfkit.sock"), (link) => sw.addPort(link));
    ns = await createNetns("vmpeer");
    const tap = await openTap({ netns: ns.name, offload: true });
    sw.addPort(tap);
    // The namespace guest keeps a static address outside the DHCP pool's first entries.
    nsAddress = "192.168.65.200";
    await ns.exec("ip", ["addr", "add", `${nsAddress}/24`, "dev", "eth0"]);
    http = await startHttpServer();
  });

  afterAll(async () => {
    await Promise.all(vms.map((vm) => vm.close()));
    await streamListener?.close();
    await dgramListener?.close();
    await stack?.close();
    await http?.close();
    await ns?.remove();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function checkVm(vm: TestVm): Promise<void> {
    await vm.sh("udhcpc -i eth0 -q -n -t 10", 60_000);
    const addr = await vm.sh("ip addr show eth0");
    expect(addr).toMatch(/inet 192\.168\.65\.\d+\/24/);
    await vm.sh("ping -c 2 -W 5 192.168.65.1");
    const size = 4 * 1024 * 1024;
    const out = await vm.sh(
      `timeout 120 wget -q -O - http://192.168.65.254:${http.port}/bytes/${size}/7 | sha256sum`,
      150_000,
    );
    expect(out.trim().split(/\s+/)[0]).toBe(seededSha256(size, 7));
    // The namespace guest on the same switch, directly.
    await vm.sh(`ping -c 1 -W 5 ${nsAddress}`);
  }

  it("serves a VM over qemu's stream netdev (unix socket, desktopd listens)", async () => {
    const vm = await bootVm({
      name: "stack-stream",
      netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${join(dir, "qemu.sock")}`,
    });
    vms.push(vm);
    await checkVm(vm);
  });

  it("serves a VM over qemu's dgram netdev (one frame per datagram, as vfkit)", async () => {
    const vm = await bootVm({
      name: "stack-dgram",
      netdev: `dgram,id=n0,local.type=unix,local.path=${join(dir, "vm-dgram.sock")},remote.type=unix,remote.path=${join(dir, "vfkit.sock")}`,
    });
    vms.push(vm);
    await checkVm(vm);
  });

  it("serves a VM over qemu's older socket netdev (TCP, desktopd listens)", async () => {
    const tcp = await listenQemuStream({ host: "127.0.0.1", port: 0 }, (link) => sw.addPort(link));
    try {
      const { host, port } = tcp.address as { host: string; port: number };
      const vm = await bootVm({ name: "stack-socket", netdev: `socket,id=n0,connect=${host}:${port}` });
      vms.push(vm);
      await checkVm(vm);
    } finally {
      await tcp.close();
    }
  });

  it("connects out to a qemu that listens (stream netdev, server=on)", async () => {
    const path = join(dir, "qemu-server.sock");
    // qemu creates the socket at start; desktopd retries until it answers.
    const connector = connectQemuStream({ path }, (link) => sw.addPort(link), { retryMs: 100 });
    try {
      const vm = await bootVm({
        name: "stack-server",
        netdev: `stream,id=n0,server=on,addr.type=unix,addr.path=${path}`,
      });
      vms.push(vm);
      await checkVm(vm);
    } finally {
      await connector.close();
    }
  });
});
