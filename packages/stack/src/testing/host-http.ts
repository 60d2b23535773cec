/**
 * A host HTTP server on 127.0.0.1 (or `host`, e.g. ::1; random port) that guests reach through
 * the stack's host address. Routes:
 * - `GET /bytes/<size>/<seed>`: `size` seeded pseudo-random bytes (see bytes.ts).
 * - `PUT|POST /upload`: reads the body, answers `<sha256-hex> <byte-count>\n`.
 * - `GET /hello/<id>`: answers `hello <id>\n`.
 * - `GET /hold/<id>`: like /hello, but holds every request until `holdUntil` of them are
 *   open at once (or `holdTimeoutMs` passed), so a test can prove they were concurrent.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { seededChunks } from "./seeded-bytes.js";

export interface HostHttpServerOptions {
  /** /hold requests are released together once this many are waiting. Default 200. */
  holdUntil?: number;
  /** ...or after this long since the first one arrived. Default 30 000 ms. */
  holdTimeoutMs?: number;
  /** The address to listen on (default 127.0.0.1). */
  host?: string;
}

export interface HostHttpServer {
  readonly port: number;
  /** The most /hold requests that were waiting at the same time. */
  readonly peakHeld: number;
  /** Completed uploads, in order. */
  readonly uploads: { sha256: string; bytes: number }[];
  /** Requests seen, by route. */
  readonly requests: Record<string, number>;
  close(): Promise<void>;
}

export async function startHttpServer(opts: HostHttpServerOptions = {}): Promise<HostHttpServer> {
  const holdUntil = opts.holdUntil ?? 200;
  const holdTimeoutMs = opts.holdTimeoutMs ?? 30_000;
  let held: (() => void)[] = [];
  let holdTimer: NodeJS.Timeout | undefined;
  const releaseHeld = () => {
    clearTimeout(holdTimer);
    holdTimer = undefined;
    const waiting = held;
    held = [];
    for (const release of waiting) release();
  };
  const state = {
    peakHeld: 0,
    uploads: [] as { sha256: string; bytes: number }[],
    requests: {} as Record<string, number>,
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const parts = (req.url ?? "/").split("/").filter(Boolean);
    const route = parts[0] ?? "";
    state.requests[route] = (state.requests[route] ?? 0) + 1;
    if (route === "bytes" && req.method === "GET") {
      const size = Number(parts[1]);
      const seed = Number(parts[2] ?? 1);
      if (!Number.isSafeInteger(size) || size < 0) return void res.writeHead(400).end("bad size\n");
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": size });
      const chunks = seededChunks(size, seed);
      const pump = () => {
        for (let next = chunks.next(); !next.done; next = chunks.next()) {
          if (!res.write(next.value)) return void res.once("drain", pump);
        }
        res.end();
      };
      res.on("close", () => chunks.return(undefined));
      pump();
    } else if (route === "upload" && (req.method === "PUT" || req.method === "POST")) {
      const hash = createHash("sha256");
      let bytes = 0;
      req.on("data", (b: Buffer) => {
        hash.update(b);
        bytes += b.length;
      });
      req.on("end", () => {
        const sha256 = hash.digest("hex");
        state.uploads.push({ sha256, bytes });
        res.writeHead(200, { "content-type": "text/plain" }).end(`${sha256} ${bytes}\n`);
      });
    } else if (route === "hello") {
      res.writeHead(200, { "content-type": "text/plain" }).end(`hello ${parts[1] ?? ""}\n`);
    } else if (route === "hold") {
      const answer = () =>
        res.writeHead(200, { "content-type": "text/plain" }).end(`hello ${parts[1] ?? ""}\n`);
      held.push(answer);
      state.peakHeld = Math.max(state.peakHeld, held.length);
      if (held.length >= holdUntil) releaseHeld();
      else holdTimer ??= setTimeout(releaseHeld, holdTimeoutMs);
    } else {
      res.writeHead(404).end("not found\n");
    }
  };

  const server: Server = createServer(handle);
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, opts.host ?? "127.0.0.1", resolve);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    get peakHeld() {
      return state.peakHeld;
    },
    uploads: state.uploads,
    requests: state.requests,
    async close() {
      releaseHeld();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port on 127.0.0.1 (or `host`) that nothing listens on (bound once, then released). */
export async function closedTcpPort(host = "127.0.0.1"): Promise<number> {
  const s = createTcpServer();
  await new Promise<void>((resolve) => s.listen(0, host, resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}
