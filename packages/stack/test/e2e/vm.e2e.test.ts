/**
 * Real Linux VMs (Debian's cloud kernel under qemu TCG) on the stack's virtual switch: one over
 * qemu's stream netdev, one over its unix datagram netdev (vfkit's framing), and a network
 * namespace on a TAP — three guests on one subnet, each with its own lease.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
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
  createNetns,
  type HostHttpServer,
  haveRootAndNetns,
  type Netns,
  seededSha256,
  startHttpServer,
  type TestVm,
  vmUnavailableReason,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const env = haveRootAndNetns();
const noVm = vmUnavailableReason();
if (noVm) console.warn(`SKIPPING VM tests: ${noVm}`);

describe.skipIf(!env.ok || noVm !== undefined)("Linux VMs on the virtual switch", () => {
  let dir: string;
  let stack: Stack;
  let sw: VirtualSwitch;
  let streamListener: QemuStreamListener;
  let dgramListener: UnixDatagramListener;
  let ns: Netns;
  let http: HostHttpServer;
  const vms: TestVm[] = [];

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
    const r = await ns.exec("busybox", ["udhcpc", "-i", "eth0", "-q", "-n", "-s", "/bin/true"]);
    expect(r.code).toBe(0);
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

  for (const kind of ["stream", "dgram"] as const) {
    it(`boots a VM over qemu's ${kind} netdev: lease, ping, download from the host`, async () => {
      const netdev =
        kind === "stream"
          ? `stream,id=n0,server=off,addr.type=unix,addr.path=${join(dir, "qemu.sock")}`
          : `dgram,id=n0,local.type=unix,local.path=${join(dir, `vm-${kind}.sock`)},remote.type=unix,remote.path=${join(dir, "vfkit.sock")}`;
      const vm = await bootVm({ name: `stack-${kind}`, netdev });
      vms.push(vm);
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
    });
  }
});
