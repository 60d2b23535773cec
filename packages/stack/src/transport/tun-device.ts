/**
 * The native calls a TAP needs: `ioctl(fd, TUNSETIFF, struct ifreq *)` and the offload settings,
 * through koffi (libc.ts). Everything else is plain file-descriptor I/O.
 */
import * as fs from "node:fs";
import { TransportError } from "../errors.js";
import { errnoName, loadLibc } from "./libc.js";

// <linux/if_tun.h>; TUNSETIFF is _IOW('T', 202, int).
const TUNSETIFF = 0x400454ca;
/** _IOW('T', 208, unsigned int): the argument is the flag word itself, not a pointer. */
const TUNSETOFFLOAD = 0x400454d0;
/** _IOW('T', 216, int): the argument points to the header size. */
const TUNSETVNETHDRSZ = 0x400454d8;
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const IFF_TAP = 0x0002;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
/** sizeof(struct ifreq) on Linux: a 16-byte name, then a union whose first member is the flags. */
const IFREQ_LEN = 40;
const IFNAMSIZ = 16;

/** Settings for a TAP opened with IFF_VNET_HDR. */
export interface VnetOptions {
  /** Bytes of virtio-net header before each frame (10, or 12 with num_buffers). */
  headerSize: number;
  /** TUN_F_* offloads the guest may use on frames it sends us. */
  offloads: number;
}

/**
 * Opens /dev/net/tun non-blocking and attaches it to a new TAP device named `kernelName`
 * in the caller's network namespace. The device lives exactly as long as the returned fd.
 * With `vnet` (and IFF_VNET_HDR in `flags`), also sets the header size and the offloads.
 */
export async function createTapDevice(
  kernelName: string,
  flags: number,
  vnet?: VnetOptions,
): Promise<number> {
  const { ioctl, errno } = await loadLibc();
  let fd: number;
  try {
    fd = fs.openSync("/dev/net/tun", fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  } catch (error) {
    throw new TransportError(`cannot open /dev/net/tun: ${(error as Error).message}`, { cause: error });
  }
  const ifr = Buffer.alloc(IFREQ_LEN);
  ifr.write(kernelName, 0, IFNAMSIZ - 1, "latin1");
  ifr.writeUInt16LE(flags, IFNAMSIZ);
  if (ioctl(fd, TUNSETIFF, "void *", ifr) !== 0) {
    const name = errnoName(errno());
    fs.closeSync(fd);
    const hint = name === "EPERM" ? " (needs CAP_NET_ADMIN)" : "";
    throw new TransportError(`ioctl(TUNSETIFF, ${kernelName}) failed: ${name}${hint}`);
  }
  if (vnet) {
    const size = Buffer.alloc(4);
    size.writeInt32LE(vnet.headerSize, 0);
    const failed =
      ioctl(fd, TUNSETVNETHDRSZ, "void *", size) !== 0
        ? "TUNSETVNETHDRSZ"
        : ioctl(fd, TUNSETOFFLOAD, "unsigned long", vnet.offloads) !== 0
          ? "TUNSETOFFLOAD"
          : undefined;
    if (failed) {
      const name = errnoName(errno());
      fs.closeSync(fd);
      throw new TransportError(`ioctl(${failed}, ${kernelName}) failed: ${name}`);
    }
  }
  return fd;
}
