/** Link and addressing constants every package agrees on. */

/** Smallest IPv4 MTU (RFC 791). */
export const MIN_MTU = 68;
/** Largest MTU a guest link takes: a TAP's and virtio-net's limit. */
export const MAX_MTU = 65520;
/** Docker Desktop's guest subnet, gateway and host address. */
export const DEFAULT_SUBNET = "192.168.65.0/24";
export const DEFAULT_MTU = 1500;
