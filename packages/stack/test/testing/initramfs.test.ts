import { describe, expect, it } from "vitest";
import { moduleLoadOrder, sharedLibraries } from "../../src/testing/initramfs.js";

// Lines of modules.dep from Debian's 6.1 cloud-amd64 kernel.
const MODULES_DEP = `kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
`;

describe("moduleLoadOrder", () => {
  it("loads every dependency before its user, each once", () => {
    const order = moduleLoadOrder(MODULES_DEP, ["virtio_pci", "virtio_net"]);
    expect(order).toEqual([
      "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
      "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
      "kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/virtio/virtio.ko",
      "kernel/drivers/virtio/virtio_pci.ko",
      "kernel/net/core/failover.ko",
      "kernel/drivers/net/net_failover.ko",
      "kernel/drivers/net/virtio_net.ko",
    ]);
  });

  it("skips modules built into the kernel (absent from modules.dep)", () => {
    expect(moduleLoadOrder(MODULES_DEP, ["e1000", "failover"])).toEqual(["kernel/net/core/failover.ko"]);
  });

  it("matches compressed module files and dashes in names", () => {
    const dep =
      "kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/fail-over.ko.zst\nkernel/net/core/fail-over.ko.zst:\n";
    expect(moduleLoadOrder(dep, ["virtio_net"])).toEqual([
      "kernel/net/core/fail-over.ko.zst",
      "kernel/drivers/net/virtio_net.ko.xz",
    ]);
  });
});

describe("sharedLibraries", () => {
  it("lists every library ldd resolves and the loader, not the vDSO", () => {
    // ldd /usr/bin/iperf3 on Debian 12.
    const ldd = `\tlinux-vdso.so.1 (0x00007ffd8f9f6000)
\tlibiperf.so.0 => /lib/x86_64-linux-gnu/libiperf.so.0 (0x00007f3b1c2a0000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3b1c0bf000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f3b1c318000)
`;
    expect(sharedLibraries(ldd)).toEqual([
      "/lib/x86_64-linux-gnu/libiperf.so.0",
      "/lib/x86_64-linux-gnu/libc.so.6",
      "/lib64/ld-linux-x86-64.so.2",
    ]);
  });

  it("gives nothing for a static binary and refuses a missing library", () => {
    expect(sharedLibraries("\tnot a dynamic executable\n")).toEqual([]);
    expect(() => sharedLibraries("\tlibgone.so.1 => not found\n")).toThrow(/libgone/);
  });
});
