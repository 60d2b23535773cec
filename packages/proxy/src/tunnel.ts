/**
 * Opens a byte stream to `host:port` the way the settings say: directly, through an HTTP(S)
 * proxy's CONNECT, or through a SOCKS5 proxy. What the explicit and the transparent proxies
 * both stand on.
 */
import { lookup } from "node:dns/promises";
import net from "node:net";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import { canLandReads, type SlabPool, withLandingReads, writeCopy } from "@desktopd/core";
import { SocksClient } from "socks";
import { ProxyError } from "./errors.js";
import { formatUpstream, type Upstream } from "./upstream.js";

/**
 * The destination could not be had: `status` is what the guest's client is answered (502; 504 on
 * a timeout; 403 when a direct connection is refused by the embedder's policy).
 */
export class UpstreamError extends ProxyError {
  override readonly code = "ERR_DESKTOPD_PROXY_UPSTREAM";
  constructor(
    readonly status: 403 | 502 | 504,
    message: string,
  ) {
    super(message);
  }
  static override isInstance(value: unknown): value is UpstreamError {
    return ProxyError.isInstance(value) && value.code === "ERR_DESKTOPD_PROXY_UPSTREAM";
  }
}

/** Who a connection is for: the client's endpoint and, for an intercepted flow, where it was going. */
export interface ConnectionContext {
  client?: { ip: string; port: number };
  /** The address and port an intercepted (transparent) flow was sent to. */
  original?: { ip: string; port: number };
}

/**
 * Opens a direct connection for a client. An embedder maps names and addresses its own way and
 * applies its policy here; throwing an UpstreamError answers the client with its status.
 */
export type DirectConnect = (
  host: string,
  port: number,
  context: ConnectionContext,
) => Duplex | Promise<Duplex>;

const directConnect: DirectConnect = (host, port) => net.connect({ host, port });

/** Resolves once `socket` connected; rejects with an UpstreamError naming `what`. */
function connected(socket: Duplex, what: string, timeoutMs: number): Promise<Duplex> {
  // A stream that is not a socket still connecting (an in-process one) is ready as it is.
  if (!(socket instanceof net.Socket)) return Promise.resolve(socket);
  if (!(socket instanceof tls.TLSSocket) && !socket.connecting && !socket.pending)
    return Promise.resolve(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new UpstreamError(504, `${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const ok = () => {
      clearTimeout(timer);
      socket.off("error", fail);
      resolve(socket);
    };
    const fail = (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(
        new UpstreamError(error.code === "ETIMEDOUT" ? 504 : 502, `${what}: ${error.code ?? error.message}`),
      );
    };
    socket.once("error", fail);
    socket.once(socket instanceof tls.TLSSocket ? "secureConnect" : "connect", ok);
  });
}

/** Reads an HTTP response head off `socket`: status code and whatever followed the blank line. */
function responseHead(
  socket: Duplex,
  what: string,
  timeoutMs: number,
): Promise<{ status: number; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let seen = Buffer.alloc(0);
    const timer = setTimeout(
      () => finish(new UpstreamError(504, `${what}: no CONNECT answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const finish = (error?: Error, value?: { status: number; rest: Buffer }) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("end", onEnd);
      if (error) {
        socket.destroy();
        reject(error);
      } else resolve(value!);
    };
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const end = seen.indexOf("\r\n\r\n");
      if (end < 0) {
        if (seen.length > 64 * 1024)
          finish(new UpstreamError(502, `${what}: CONNECT answer head over 64 KiB`));
        return;
      }
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(seen.subarray(0, end).toString("latin1"))?.[1]);
      if (!status) finish(new UpstreamError(502, `${what}: not an HTTP answer to CONNECT`));
      else {
        socket.pause();
        finish(undefined, { status, rest: seen.subarray(end + 4) });
      }
    };
    const onError = (e: NodeJS.ErrnoException) =>
      finish(new UpstreamError(502, `${what}: ${e.code ?? e.message}`));
    const onEnd = () => finish(new UpstreamError(502, `${what}: closed before answering CONNECT`));
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("end", onEnd);
  });
}

/** A connection to the proxy itself: TCP, or TLS for an `https://` upstream. */
export async function connectToProxy(upstream: Upstream, timeoutMs: number): Promise<Duplex> {
  const what = `upstream ${formatUpstream(upstream)}`;
  const socket =
    upstream.protocol === "https"
      ? tls.connect({
          host: upstream.host,
          port: upstream.port,
          servername: net.isIP(upstream.host) ? undefined : upstream.host,
        })
      : net.connect({ host: upstream.host, port: upstream.port });
  return connected(socket, what, timeoutMs);
}

export function basicAuth(upstream: Upstream): string | undefined {
  if (!upstream.auth) return undefined;
  return `Basic ${Buffer.from(`${upstream.auth.username}:${upstream.auth.password}`).toString("base64")}`;
}

/**
 * A stream to `host:port`: direct when `upstream` is undefined, else tunnelled through it. Bytes
 * the upstream sent after its CONNECT answer are pushed back, so the caller loses nothing.
 */
export async function openTunnel(
  host: string,
  port: number,
  upstream: Upstream | undefined,
  o: { timeoutMs?: number; direct?: DirectConnect; context?: ConnectionContext } = {},
): Promise<Duplex> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  if (!upstream) {
    const socket = await (o.direct ?? directConnect)(host, port, o.context ?? {});
    return connected(socket, `${host}:${port}`, timeoutMs);
  }
  const what = `upstream ${formatUpstream(upstream)}`;
  if (upstream.protocol === "socks5" || upstream.protocol === "socks5h") {
    try {
      const { socket } = await SocksClient.createConnection({
        proxy: {
          host: upstream.host,
          port: upstream.port,
          type: 5,
          ...(upstream.auth ? { userId: upstream.auth.username, password: upstream.auth.password } : {}),
        },
        command: "connect",
        // socks5h: the proxy resolves the name; socks5: we do, with the host's resolver.
        destination: {
          host: upstream.protocol === "socks5" && net.isIP(host) === 0 ? (await lookup(host)).address : host,
          port,
        },
        timeout: timeoutMs,
      });
      return socket;
    } catch (error) {
      const message = (error as Error).message;
      throw new UpstreamError(/timed? ?out/i.test(message) ? 504 : 502, `${what}: ${message}`);
    }
  }
  const socket = await connectToProxy(upstream, timeoutMs);
  const target = net.isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  const auth = basicAuth(upstream);
  socket.write(
    `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ""}\r\n`,
  );
  const { status, rest } = await responseHead(socket, what, timeoutMs);
  if (status !== 200) {
    socket.destroy();
    throw new UpstreamError(502, `${what} answered CONNECT ${target} with ${status}`);
  }
  if (rest.length > 0) socket.unshift(rest);
  socket.resume();
  return socket;
}

/**
 * Joins a client and the stream opened for it, both ways; when either end closes, so does the
 * other. `open` holds the remote while it lives, so a proxy's close() can end it.
 *
 * With `pool`, a remote that is a plain TCP socket (direct, or through an HTTP proxy's CONNECT)
 * moves under one whose reads land in a shared buffer (`withLandingReads`), and each read reaches
 * the client as a copy in `pool`, given back at the client's write callback. A download then
 * leaves no 64 KiB buffer per read to the garbage collector, which at gigabits per second ran
 * full collections back to back. Other remotes (TLS, in-process streams) are piped.
 */
export function splice(client: Duplex, remote: Duplex, open: Set<Duplex>, pool?: SlabPool): void {
  const far = pool && canLandReads(remote) ? relayed(remote, client, pool) : remote;
  open.add(far);
  far.on("error", () => client.destroy());
  far.on("close", () => {
    open.delete(far);
    client.destroy();
  });
  client.on("close", () => far.destroy());
  if (far === remote) remote.pipe(client);
  client.pipe(far);
}

/** `remote`'s reads to `client` through `pool`, with backpressure and its end; the socket now. */
function relayed(remote: net.Socket, client: Duplex, pool: SlabPool): net.Socket {
  const socket = withLandingReads(remote, (bytes) => writeCopy(client, pool, bytes));
  client.on("drain", () => socket.resume());
  socket.on("end", () => client.end());
  socket.resume();
  return socket;
}

/**
 * Tries `hops` in order (a PAC answer's fallbacks) until `attempt` gets a stream; a hop that is
 * refused or unreachable (502) passes to the next, and the last failure is the one thrown.
 */
export async function firstReachable<H>(
  hops: readonly H[],
  attempt: (hop: H) => Promise<Duplex>,
): Promise<{ stream: Duplex; hop: H }> {
  // Built only when needed: an error's stack trace is a measurable cost of every request.
  let failure: unknown;
  for (const hop of hops) {
    try {
      return { stream: await attempt(hop), hop };
    } catch (error) {
      failure = error;
      // A policy refusal (403) is the answer, not a reason to try another way.
      if (UpstreamError.isInstance(error) && error.status === 403) throw error;
    }
  }
  throw failure ?? new UpstreamError(502, "no route");
}
