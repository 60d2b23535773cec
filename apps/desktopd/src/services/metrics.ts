/**
 * `--metrics ADDR:PORT`: GET /metrics on loopback TCP for a Prometheus scraper. Read-only and
 * loopback only (the config refuses other addresses); everything else is 404 or 405.
 */
import { createServer } from "node:http";
import type { Logger } from "@desktopd/stack";
import { parseListenAddress } from "../config.js";
import type { DaemonMetrics } from "../metrics.js";
import type { Service } from "./service.js";

export interface MetricsService extends Service {
  /** http://HOST:PORT/metrics, the port filled in. */
  readonly url: string;
}

export async function startMetricsServer(
  listen: string,
  metrics: DaemonMetrics,
  logger?: Logger,
): Promise<MetricsService> {
  const address = parseListenAddress(listen)!;
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: try /metrics\n");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "text/plain", allow: "GET, HEAD" }).end("GET only\n");
      return;
    }
    metrics.text().then(
      (text) =>
        res
          .writeHead(200, { "content-type": metrics.contentType })
          .end(req.method === "HEAD" ? undefined : text),
      (error: unknown) => res.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`),
    );
  });
  // A scraper that stalls mid-request holds nothing for long.
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => resolve());
  });
  const { port } = server.address() as { port: number };
  const host = address.host.includes(":") ? `[${address.host}]` : address.host;
  const url = `http://${host}:${port}/metrics`;
  logger?.info({ url }, "metrics serving");
  return {
    name: "metrics",
    url,
    status: () => ({ metrics: url }),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
