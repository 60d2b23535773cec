/**
 * The few libc calls Node does not offer (TAP ioctls, unix datagram sockets, raw ICMP sockets, TCP
 * socket options), bound through koffi so installing the package needs no compiler. Loaded on
 * first use: importing the stack must not load a native library on a host that never opens a TAP
 * or a datagram socket.
 */
import { constants as osConstants } from "node:os";
import { TransportError } from "../errors.js";

/** Linux's socket constants the koffi-bound sockets share (x86-64 and aarch64 values). */
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20;
export const SO_SNDTIMEO = 21;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_WAITFORONE = 0x10000;
export const EINTR = 4;
export const EAGAIN = 11;

/** A bound C function; `.async` runs it on a libuv worker thread and calls back with the result. */
export type CFunction = ((...args: unknown[]) => number) & {
  async: (...args: unknown[]) => void;
};

export interface Libc {
  ioctl: CFunction;
  socket: CFunction;
  bind: CFunction;
  sendto: CFunction;
  setsockopt: CFunction;
  getsockopt: CFunction;
  recvmmsg: CFunction;
  recvfrom: CFunction;
  sendmmsg: CFunction;
  shutdown: CFunction;
  close: CFunction;
  errno: () => number;
  /** Native memory that stays put while a worker thread writes into it. */
  alloc: (bytes: number) => bigint;
  free: (ptr: bigint) => void;
  view: (ptr: bigint, bytes: number) => ArrayBuffer;
}

let loaded: Promise<Libc> | undefined;

export function loadLibc(): Promise<Libc> {
  loaded ??= import("koffi")
    .then((koffi) => {
      const lib = koffi.load("libc.so.6");
      const fn = (proto: string) => lib.func(proto) as unknown as CFunction;
      return {
        ioctl: fn("int ioctl(int fd, unsigned long request, ...)"),
        socket: fn("int socket(int domain, int type, int protocol)"),
        bind: fn("int bind(int fd, const void *addr, uint32_t len)"),
        sendto: fn(
          "intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)",
        ),
        setsockopt: fn("int setsockopt(int fd, int level, int name, const void *value, uint32_t len)"),
        getsockopt: fn("int getsockopt(int fd, int level, int name, void *value, void *len)"),
        recvmmsg: fn("int recvmmsg(int fd, uint64_t vec, unsigned int vlen, int flags, void *timeout)"),
        recvfrom: fn(
          "intptr_t recvfrom(int fd, uint64_t buf, size_t len, int flags, uint64_t addr, uint64_t alen)",
        ),
        sendmmsg: fn("int sendmmsg(int fd, uint64_t vec, unsigned int vlen, int flags)"),
        shutdown: fn("int shutdown(int fd, int how)"),
        close: fn("int close(int fd)"),
        errno: () => koffi.errno(),
        alloc: (bytes: number) => koffi.alloc("uint8_t", bytes) as unknown as bigint,
        free: (ptr: bigint) => koffi.free(ptr as never),
        view: (ptr: bigint, bytes: number) => koffi.view(ptr as never, bytes),
      };
    })
    .catch((error: unknown) => {
      loaded = undefined;
      throw new TransportError(`cannot load libc through koffi: ${(error as Error).message}`, {
        cause: error,
      });
    });
  return loaded;
}

/** "EAGAIN" for 11: the names Node uses in its own errors. */
export function errnoName(code: number): string {
  const entry = Object.entries(osConstants.errno).find(([, value]) => value === code);
  return entry ? entry[0] : `errno ${code}`;
}
