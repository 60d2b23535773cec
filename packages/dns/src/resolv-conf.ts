/** Parses resolv.conf(5): the nameservers, in order. Pure, so the host layer can re-read any file. */
import { isIP } from "node:net";
import type { Upstream } from "./upstream.js";

/** glibc's limit: later nameserver lines are ignored. */
const MAXNS = 3;

export function parseResolvConf(text: string): Upstream[] {
  const servers: Upstream[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    const [keyword, value] = line.split(/\s+/);
    if (keyword !== "nameserver" || !value) continue;
    // A scoped IPv6 address (fe80::1%eth0) keeps its zone for the socket.
    if (isIP(value.split("%")[0]!) === 0) continue;
    servers.push({ host: value, port: 53 });
    if (servers.length === MAXNS) break;
  }
  // No nameserver line means the local one (resolv.conf(5)).
  return servers.length > 0 ? servers : [{ host: "127.0.0.1", port: 53 }];
}
