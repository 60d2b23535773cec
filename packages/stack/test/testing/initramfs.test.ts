import { describe, expect, it } from "vitest";
import { moduleLoadOrder } from "../../src/testing/initramfs.js";

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
