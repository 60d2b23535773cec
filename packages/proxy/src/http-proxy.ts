/**
 * The explicit HTTP proxy guests are pointed at (`http.docker.internal:3128`): absolute-form
 * requests forwarded with keep-alive, CONNECT tunnels, each through the upstream the settings
 * choose for its destination (direct, HTTP(S) proxy with Basic auth, SOCKS5). Node's own HTTP
 * parser reads the guest's requests; it is handed any Duplex, so the stack's in-process streams
 * are served as they are, without a host port.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import { type Logger, SlabPool, systemClock } from "@desktopd/core";
import type { ProxySettings } from "./settings.js";
import {
  basicAuth,
  type ConnectionContext,
  connectToProxy,
  type DirectConnect,
  firstReachable,
  openTunnel,
  splice,
  UpstreamError,
} from "./tunnel.js";
import { formatUpstream, type Upstream } from "./upstream.js";
import { UpstreamPool, type UpstreamPoolOptions, upstreamKey } from "./upstream-pool.js";

export interface HttpProxyOptions {
  settings: ProxySettings;
  /** Destinations the proxy serves; others get 403 with a body saying so (default: all). */
  allow?: (host: string, port: number) => boolean;
  /** Ports CONNECT may reach (default: any). */
  connectPorts?: readonly number[] | (() => readonly number[] | undefined);
  /** Bound on reaching the destination or the upstream, ms (default 10 000); then 504. */
  timeoutMs?: number;
  /** How a direct connection is made (default: a host TCP socket). */
  direct?: DirectConnect;
  /** Idle keep-alive connections kept to HTTP(S) upstream proxies for plain requests. */
  upstreamPool?: UpstreamPoolOptions;
  logger?: Logger;
}

export interface HttpProxyCounters {
  requests: number;
  tunnels: number;
  /** Plain requests sent to an upstream proxy on a kept-alive connection instead of a new one. */
  upstreamReused: number;
  /** Requests sent again on a new connection after a kept-alive one failed before any answer. */
  upstreamRetried: number;
  /** Answers the proxy gave itself, by status (400, 403, 431, 502, 504...). */
  errors: Record<string, number>;
}

export interface HttpProxy {
  /**
   * Serves one client connection (a guest's stream, or a host socket). With `context.original`
   * the connection was intercepted: origin-form requests go to their Host header's name.
   */
  handle(stream: Duplex, context?: ConnectionContext): void;
  counters(): HttpProxyCounters;
  /** Ends every connection. */
  close(): void;
}

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "upgrade",
]);

/** Methods a proxy may send again on its own (RFC 9110 9.2.2), when they carry no body. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** Largest request head: beyond it the client gets 431 (Node's parser enforces it). */
export const MAX_HEADER_BYTES = 64 * 1024;

export function createHttpProxy(o: HttpProxyOptions): HttpProxy {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const counters: HttpProxyCounters = {
    requests: 0,
    tunnels: 0,
    upstreamReused: 0,
    upstreamRetried: 0,
    errors: {},
  };
  const pool = new UpstreamPool(o.upstreamPool);
  /** Streams that came out of the pool, until their request is sent. */
  const reused = new WeakSet<Duplex>();
  // A connection kept for one upstream must not carry requests after the settings moved away,
  // nor one in use then come back to the pool afterwards (`generation`), nor any after close().
  let generation = 0;
  let closed = false;
  const onSettingsChanged = () => {
    generation++;
    pool.clear();
  };
  o.settings.on("changed", onSettingsChanged);
  const refuse = (status: number) => {
    counters.errors[status] = (counters.errors[status] ?? 0) + 1;
  };
  const server = http.createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: 30_000 });
  const open = new Set<Duplex>();
  /** Downloads through tunnels: remote reads on their way to the client (see `splice`). */
  const readPool = new SlabPool({ maxSlabs: 64, maxFree: 8, clock: systemClock });
  const contexts = new WeakMap<object, ConnectionContext>();

  const answer = (res: ServerResponse, status: number, text: string) => {
    refuse(status);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "x-desktopd-proxy": "1" });
    res.end(`desktopd proxy: ${text}\n`);
  };

  /** The upstream's own status (403, 502, 504) with its message; anything else a 502 naming the host. */
  const answerFailure = (res: ServerResponse, target: URL, error: unknown) => {
    if (UpstreamError.isInstance(error)) answer(res, error.status, error.message);
    else
      answer(
        res,
        502,
        `${target.host}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    counters.requests++;
    const context = contexts.get(req.socket) ?? {};
    const original = context.original;
    let target: URL;
    try {
      // An intercepted connection speaks to the origin: its requests name the host in Host.
      target =
        original && req.url?.startsWith("/")
          ? new URL(`http://${req.headers.host ?? hostPort(original.ip, original.port)}${req.url}`)
          : new URL(req.url ?? "");
      if (original && req.url?.startsWith("/") && target.port === "" && original.port !== 80)
        target.port = String(original.port);
    } catch {
      answer(res, 400, `"${req.url}" is not an absolute http:// URL (configure this as an HTTP proxy)`);
      return;
    }
    if (target.protocol !== "http:") {
      answer(res, 400, `${target.protocol} URLs go through CONNECT, not as a plain request`);
      return;
    }
    const host = target.hostname.replace(/^\[|\]$/g, "");
    const port = target.port === "" ? 80 : Number(target.port);
    if (o.allow && !o.allow(host, port)) {
      answer(res, 403, `${host}:${port} is not on this proxy's allow-list`);
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    }
    // The route is had first: whether the request goes in absolute form depends on the hop taken.
    o.settings
      .routes(host, port, false, target.href)
      .then((hops) =>
        firstReachable(hops, (hop) => {
          if (isHttpUpstream(hop)) {
            const kept = pool.take(upstreamKey(hop));
            if (kept) {
              reused.add(kept);
              return Promise.resolve(kept);
            }
            return connectToProxy(hop, timeoutMs);
          }
          // Direct, an intercepted request goes where the guest sent it, not where its Host says.
          const [toHost, toPort] = original && !hop ? [original.ip, original.port] : [host, port];
          return openTunnel(toHost, toPort, hop, {
            timeoutMs,
            context,
            ...(o.direct ? { direct: o.direct } : {}),
          });
        }),
      )
      .then(
        ({ stream, hop }) => {
          if (res.destroyed) {
            stream.destroy();
            return;
          }
          forward(req, res, target, stream, hop, headers);
        },
        (error: unknown) => answerFailure(res, target, error),
      );
  });

  /** Sends `req` over `stream` (to the destination, or to the HTTP upstream `hop`) and relays the answer. */
  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    target: URL,
    stream: Duplex,
    hop: Upstream | undefined,
    headers: http.OutgoingHttpHeaders,
  ) => {
    const viaProxy = isHttpUpstream(hop);
    const wasKept = reused.delete(stream);
    if (wasKept) counters.upstreamReused++;
    if (viaProxy) {
      const auth = basicAuth(hop);
      if (auth) headers["proxy-authorization"] = auth;
      // Ours to the upstream, whatever the client asked of us (its own was dropped as hop-by-hop).
      headers.connection = "keep-alive";
      const key = upstreamKey(hop);
      const born = generation;
      // Node's client frees a connection whose exchange ended cleanly with keep-alive.
      stream.once("free", () => {
        if (closed || born !== generation) stream.destroy();
        else pool.put(key, stream);
      });
    }
    const bodyless =
      req.headers["transfer-encoding"] === undefined &&
      (req.headers["content-length"] === undefined || req.headers["content-length"] === "0");
    const out = http.request({
      method: req.method,
      // An HTTP upstream gets the absolute form; a direct or SOCKS hop the origin form.
      path: viaProxy ? target.href : `${target.pathname}${target.search}`,
      headers,
      // No agent: one request on the stream the route gave (the pool above keeps upstream ones).
      createConnection: (() => stream) as never,
    });
    out.setTimeout(timeoutMs, () =>
      out.destroy(
        new UpstreamError(
          504,
          `${hop ? `upstream ${formatUpstream(hop)}` : target.host}: no answer within ${timeoutMs} ms`,
        ),
      ),
    );
    let answered = false;
    let upstreamEnded = false;
    out.on("response", (up) => {
      answered = true;
      const back: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(up.headers)) {
        if (!HOP_BY_HOP.has(name) && value !== undefined) back[name] = value;
      }
      res.writeHead(up.statusCode ?? 502, up.statusMessage, back);
      up.pipe(res);
      up.on("end", () => {
        upstreamEnded = true;
      });
      up.on("error", () => res.destroy());
    });
    out.on("error", (error) => {
      // A kept connection the upstream closed meanwhile: an idempotent request without a body
      // is sent again, once, on a new connection (RFC 9110 9.2.2, as browsers do). Not after our
      // own timeout, and never a request with a body, which cannot be replayed.
      const code = (error as NodeJS.ErrnoException).code;
      const connectionLost = code === "ECONNRESET" || code === "EPIPE";
      const replayable = bodyless && IDEMPOTENT.has(req.method ?? "");
      if (wasKept && viaProxy && connectionLost && replayable && !answered && !res.destroyed) {
        counters.upstreamRetried++;
        stream.destroy();
        connectToProxy(hop, timeoutMs).then(
          (fresh) => (res.destroyed ? fresh.destroy() : forward(req, res, target, fresh, hop, headers)),
          (failure: unknown) => answerFailure(res, target, failure),
        );
        return;
      }
      answerFailure(res, target, error);
    });
    if (bodyless) {
      req.resume();
      out.end();
    } else req.pipe(out);
    res.on("close", () => {
      // A finished exchange leaves the connection to Node's client: freed to the pool, or closed.
      // One whose answer came before the client's body ended (a 403 to an upload) is not finished.
      if (upstreamEnded && out.writableFinished) return;
      out.destroy();
      stream.destroy();
    });
  };

  server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    counters.tunnels++;
    const fail = (status: number, text: string) => {
      refuse(status);
      client.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\ndesktopd proxy: ${text}\n`,
      );
    };
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(req.url ?? "");
    const port = Number(m?.[3]);
    if (!m || port < 1 || port > 65535) {
      fail(400, `CONNECT needs HOST:PORT, got "${req.url}"`);
      return;
    }
    const host = m[1] ?? m[2]!;
    const ports = typeof o.connectPorts === "function" ? o.connectPorts() : o.connectPorts;
    if (ports && !ports.includes(port)) {
      fail(403, `CONNECT to port ${port} is not allowed (ports: ${ports.join(", ")})`);
      return;
    }
    if (o.allow && !o.allow(host, port)) {
      fail(403, `${host}:${port} is not on this proxy's allow-list`);
      return;
    }
    client.on("error", () => {});
    const context = contexts.get(client) ?? {};
    o.settings
      .routes(host, port, true)
      .then((hops) =>
        firstReachable(hops, (hop) =>
          openTunnel(host, port, hop, { timeoutMs, context, ...(o.direct ? { direct: o.direct } : {}) }),
        ),
      )
      .then(
        ({ stream: remote }) => {
          if (client.destroyed) {
            remote.destroy();
            return;
          }
          client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
          if (head.length > 0) remote.write(head);
          splice(client, remote, open, readPool);
        },
        (error: unknown) => {
          const status = UpstreamError.isInstance(error) ? error.status : 502;
          fail(status, (error as Error).message);
        },
      );
  });

  // One answer per connection: bytes still arriving after it (the rest of an oversized head) can
  // make the parser report again, and a second count would misstate what the client sent.
  const answeredBadClients = new WeakSet<Duplex>();
  server.on("clientError", (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (answeredBadClients.has(socket)) return;
    answeredBadClients.add(socket);
    const status =
      error.code === "HPE_HEADER_OVERFLOW" ? 431 : error.code === "ERR_HTTP_REQUEST_TIMEOUT" ? 408 : 400;
    refuse(status);
    if ((socket as net.Socket).writable) {
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`,
      );
    } else socket.destroy();
  });

  return {
    handle(stream, context) {
      if (context) contexts.set(stream, context);
      open.add(stream);
      stream.on("close", () => open.delete(stream));
      server.emit("connection", stream);
    },
    counters: () => ({ ...counters, errors: { ...counters.errors } }),
    close() {
      closed = true;
      for (const s of open) s.destroy();
      open.clear();
      pool.clear();
      o.settings.off("changed", onSettingsChanged);
      readPool.close();
    },
  };
}

/** An HTTP(S) proxy hop: it takes plain requests in absolute form (and keeps connections). */
function isHttpUpstream(hop: Upstream | undefined): hop is Upstream {
  return hop !== undefined && (hop.protocol === "http" || hop.protocol === "https");
}

function hostPort(ip: string, port: number): string {
  const host = ip.includes(":") ? `[${ip}]` : ip;
  return port === 80 ? host : `${host}:${port}`;
}
