/** The handler behind a UDP socket and a TCP listener on one host address and port. */
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { isIPv6, type Socket as NetSocket, createServer as netServer, type Server } from "node:net";
import type { Logger } from "@desktopd/core";
import { silentLogger } from "@desktopd/core";
import { DnsSocketError } from "./errors.js";
import type { DnsHandler } from "./handler.js";
import { MAX_QUERY_BYTES } from "./message.js";
import { BatchUdpSocket, batchedUdpSupported, sockaddrOf } from "./udp-batch.js";

export interface ListenOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 53; 0 picks a free port (the same one for UDP and TCP). */
  port?: number;
  /** Also listen on TCP (default true). */
  tcp?: boolean;
  /**
   * UDP served in batches through recvmmsg/sendmmsg (default: on 64-bit Linux when `host` is an
   * address literal; it holds one libuv worker thread). false: node:dgram, one datagram at a time.
   */
  batchedUdp?: boolean;
  /** TCP connections open at once; further ones are closed on arrival (default 256). */
  maxTcpConnections?: number;
  logger?: Logger;
}

export interface DnsListener {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function listenDns(handler: DnsHandler, o: ListenOptions = {}): Promise<DnsListener> {
  const host = o.host ?? "127.0.0.1";
  const log = o.logger ?? silentLogger;
  const wanted = o.port ?? 53;
  const maxTcp = (o.tcp ?? true) ? (o.maxTcpConnections ?? 256) : 0;
  const batched = (o.batchedUdp ?? true) && batchedUdpSupported() && sockaddrOf(host, 0) !== undefined;
  // Port 0: the free UDP port may be taken for TCP; try again with another.
  for (let attempt = 1; ; attempt++) {
    try {
      return await listenOnce(handler, host, wanted, maxTcp, batched, log);
    } catch (e) {
      const inUse =
        (e as { code?: string }).code === "EADDRINUSE" || (e as { errno?: unknown }).errno === "EADDRINUSE";
      if (wanted !== 0 || !inUse || attempt === 10) throw e;
    }
  }
}

/** Resolves once listening, rejects with the bind error. */
function listening(emitter: Socket | Server): Promise<void> {
  return Promise.race([
    once(emitter, "listening").then(() => {}),
    once(emitter, "error").then(([e]) => Promise.reject(e)),
  ]);
}

/** A bound UDP socket serving `handler`, whichever kind. */
interface UdpServer {
  port: number;
  close(): Promise<void>;
}

async function listenOnce(
  handler: DnsHandler,
  host: string,
  wanted: number,
  /** 0: no TCP listener. */
  maxTcp: number,
  batched: boolean,
  log: Logger,
): Promise<DnsListener> {
  const udp = batched
    ? await serveBatchedUdp(handler, host, wanted, log).catch((e: unknown) => {
        // The system said no (a port in use): that is the answer. koffi or libc missing: dgram will do.
        if (DnsSocketError.isInstance(e)) throw e;
        log.warn({ err: e }, "dns: batched UDP unavailable, using node:dgram");
        return serveUdp(handler, host, wanted, log);
      })
    : await serveUdp(handler, host, wanted, log);
  const port = udp.port;

  let tcp: Server | undefined;
  const conns = new Set<NetSocket>();
  if (maxTcp > 0) {
    // Half-open: a client may send its queries and then its FIN; the answers still go out, and
    // serveStream ends our side once they have.
    const server = netServer({ allowHalfOpen: true }, (s) => {
      conns.add(s);
      s.on("close", () => conns.delete(s));
      handler.serveStream(s, `${s.remoteAddress}:${s.remotePort}`);
    });
    // Each connection holds buffers and a timer: beyond the limit Node closes new ones at once.
    server.maxConnections = maxTcp;
    tcp = server;
    try {
      const up = listening(server);
      server.listen(port, host);
      await up;
    } catch (e) {
      await udp.close();
      throw e;
    }
  }
  return {
    host,
    port,
    async close() {
      await udp.close();
      if (tcp) {
        for (const s of conns) s.destroy();
        await new Promise((resolve) => tcp?.close(resolve));
      }
    },
  };
}

/** node:dgram: one 'message' event and one send per datagram. */
async function serveUdp(handler: DnsHandler, host: string, wanted: number, log: Logger): Promise<UdpServer> {
  // Bursts from many clients arrive while a resolution runs: a larger receive buffer (capped by
  // net.core.rmem_max) keeps them from being dropped by the kernel.
  const udp: Socket = createSocket({ type: isIPv6(host) ? "udp6" : "udp4", recvBufferSize: 1 << 20 });
  let closed = false;
  udp.on("message", (msg, rinfo) => {
    handler.handle(msg, `${rinfo.address}:${rinfo.port}`, "udp").then(
      (reply) => {
        // An answer that was still being resolved at close(): send() would throw, unhandled.
        if (reply && !closed) udp.send(reply, rinfo.port, rinfo.address);
      },
      (e: unknown) => log.warn({ err: e }, "dns over udp: query failed"),
    );
  });
  const bound = listening(udp);
  udp.bind(wanted, host);
  await bound;
  udp.on("error", (e) => log.warn({ err: e }, "dns udp socket error"));
  return {
    port: udp.address().port,
    async close() {
      if (closed) return;
      closed = true;
      udp.close();
    },
  };
}

/**
 * recvmmsg/sendmmsg: a repeated query is answered within its batch (`handler.replay`), and all
 * the batch's answers leave in one call; the others are resolved as usual and sent when ready.
 */
async function serveBatchedUdp(
  handler: DnsHandler,
  host: string,
  wanted: number,
  log: Logger,
): Promise<UdpServer> {
  const socket = await BatchUdpSocket.bind(host, wanted, { maxDatagram: MAX_QUERY_BYTES + 1 });
  let closed = false;
  socket.start(
    (batch) => {
      for (let i = 0; i < batch.count; i++) {
        // A datagram cut to the room's size is still longer than any query: vetQuery drops it, counted.
        const data = batch.data(i);
        const client = batch.client(i);
        const replayed = handler.replay(data, client, "udp");
        if (replayed) {
          batch.reply(i, replayed);
          continue;
        }
        // The batch's memory is reused by the next receive: the query and its sender are copied.
        const sender = batch.sender(i);
        handler.handle(Buffer.from(data), client, "udp").then(
          (reply) => {
            if (reply && !closed) socket.sendTo(reply, sender);
          },
          (e: unknown) => log.warn({ err: e }, "dns over udp: query failed"),
        );
      }
    },
    (e) => log.warn({ err: e }, "dns udp socket error"),
  );
  return {
    port: socket.port,
    async close() {
      closed = true;
      await socket.close();
    },
  };
}
