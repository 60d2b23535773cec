/**
 * One query to one upstream nameserver: UDP first, the same question again over TCP when the
 * answer comes back truncated (RFC 7766). The caller bounds it with an AbortSignal.
 */
import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { isIPv6, connect as tcpConnect } from "node:net";
import * as packet from "dns-packet";
import { UpstreamError } from "./errors.js";
import { normalizeName } from "./name.js";

export interface Upstream {
  host: string;
  port: number;
}

/** The EDNS buffer we offer upstreams: DNS flag day 2020's value, safe from fragmentation. */
export const UPSTREAM_UDP_SIZE = 1232;

export type QueryTransport = "udp" | "tcp";

/** Asks `server` one question; rejects with UpstreamError on timeout/abort or network failure. */
export async function queryUpstream(
  server: Upstream,
  question: packet.Question,
  signal: AbortSignal,
  edns = true,
): Promise<packet.DecodedPacket> {
  const query: packet.Packet = {
    type: "query",
    id: randomInt(0x10000),
    flags: packet.RECURSION_DESIRED,
    questions: [question],
    additionals: edns ? [{ type: "OPT", name: ".", udpPayloadSize: UPSTREAM_UDP_SIZE } as packet.Answer] : [],
  };
  const response = await exchange(server, query, "udp", signal);
  return response.flag_tc ? exchange(server, query, "tcp", signal) : response;
}

function exchange(
  server: Upstream,
  query: packet.Packet,
  transport: QueryTransport,
  signal: AbortSignal,
): Promise<packet.DecodedPacket> {
  return new Promise((resolve, reject) => {
    let cleanup = () => {};
    const fail = (reason: "timeout" | "network", message: string) => {
      cleanup();
      reject(new UpstreamError(reason, `${server.host}:${server.port} (${transport}): ${message}`));
    };
    if (signal.aborted) return fail("timeout", "no time left");
    const onAbort = () => fail("timeout", "timed out");
    signal.addEventListener("abort", onAbort, { once: true });
    // A response counts only if it is for our id and our question (RFC 5452 §9.1).
    const accept = (msg: Buffer): boolean => {
      let r: packet.DecodedPacket;
      try {
        r = packet.decode(msg);
      } catch {
        return false;
      }
      const q = r.questions?.[0];
      const ours = query.questions![0]!;
      if (r.id !== query.id || !r.flag_qr || !q || q.type !== ours.type || q.class !== (ours.class ?? "IN"))
        return false;
      if (normalizeName(q.name) !== normalizeName(ours.name)) return false;
      cleanup();
      resolve(r);
      return true;
    };

    if (transport === "udp") {
      const sock = createSocket(isIPv6(server.host) ? "udp6" : "udp4");
      cleanup = () => {
        signal.removeEventListener("abort", onAbort);
        sock.removeAllListeners("message");
        sock.on("error", () => {});
        try {
          sock.close();
        } catch {}
      };
      sock.on("error", (e) => fail("network", e.message));
      // Connected: the kernel drops datagrams from anyone but the server, and an ICMP
      // port-unreachable fails the query at once instead of at the timeout.
      sock.on("message", (msg) => accept(msg));
      sock.connect(server.port, server.host, () => {
        sock.send(packet.encode(query), (e) => {
          if (e) fail("network", e.message);
        });
      });
      return;
    }

    const conn = tcpConnect({ host: server.host, port: server.port });
    cleanup = () => {
      signal.removeEventListener("abort", onAbort);
      conn.removeAllListeners("data");
      conn.on("error", () => {});
      conn.destroy();
    };
    let buf = Buffer.alloc(0);
    conn.on("error", (e) => fail("network", e.message));
    conn.on("end", () => fail("network", "closed before answering"));
    conn.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        if (accept(buf.subarray(2, 2 + len))) return;
        buf = buf.subarray(2 + len);
      }
    });
    conn.write(packet.streamEncode(query));
  });
}
