/**
 * Test helpers shared by this package's and the daemon's end-to-end tests: a real dnsmasq on a
 * loopback address of its own (upstream, split-horizon server, reference), and the real `dig`.
 */
export * from "./dig.js";
export * from "./dnsmasq.js";
