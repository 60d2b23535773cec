/**
 * The control API of a running daemon: HTTP/1.1 with JSON bodies on a unix socket (mode 0600),
 * for `desktopd status` and `desktopd publish ...` — and any tool that speaks HTTP over a unix
 * socket (`curl --unix-socket PATH http://desktopd/v1/status`).
 *
 *   GET    /v1/status            ready info, guest links with counters, leases, stack counters,
 *                                 the daemon's memory, fds and active handles (process)
 *   GET    /v1/publish           published ports with live stats
 *   POST   /v1/publish           {"spec": "8080:80"} → the forwards added (201)
 *   DELETE /v1/publish/ID[?close=1]  unpublish by id or spec; close=1 also closes its connections
 *   GET    /v1/dns/names         names registered for guests (the DNS registry)
 *   POST   /v1/dns/names         {"name": "web", "address": "192.168.65.9", "ttl": 60} → registered (201)
 *   DELETE /v1/dns/names/NAME[?address=IP]  one address of a name, or all of them
 *   GET    /v1/dns/log[?limit=N] the most recent DNS queries: name, type, answers, layer, latency
 *   GET    /v1/egress            egress rules (first match wins), the host-loopback switch, counters
 *   POST   /v1/egress            {"rule": "deny 10.0.0.0/8", "position": 0} → the rule added (201)
 *   DELETE /v1/egress/ID         remove a rule by id
 *   GET    /v1/proxy             the upstream in use and where it came from, the proxy's addresses and counters
 *   PUT    /v1/proxy             {"upstream": "http://proxy:3128" | "direct", "noProxy": "a,b"} → replaces the settings
 *   DELETE /v1/proxy             back to the config's (or the environment's) settings
 *   GET    /v1/proxy/env         HTTP_PROXY, HTTPS_PROXY, NO_PROXY (both cases) pointing a guest at the proxy
 *   GET    /v1/autoforward       automatic forwards: rules, what is published or waiting, counters, the reporter line
 *   POST   /v1/autoforward       {"rule": "ignore 22", "position": 0} → the rule added (201)
 *   DELETE /v1/autoforward/ID    remove a rule
 *   GET    /v1/flows             every open TCP and UDP flow: endpoints, state, bytes, age, idle, service
 *   POST   /v1/reload            re-read the config file: what changed live, what needs a restart
 *   GET    /v1/events            what happens from now on, one JSON object a line, until the client goes
 *   GET    /metrics              Prometheus text format
 */
import { chmodSync, existsSync, lstatSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type RequestListener, type ServerResponse } from "node:http";
import { connect } from "node:net";
import { type Dns, DnsError, normalizeName, parseRecord } from "@desktopd/dns";
import { type Forwarder, PortfwdError, parsePublishSpec } from "@desktopd/portfwd";
import { ProxyConfigError } from "@desktopd/proxy";
import { ConfigError, type Egress } from "@desktopd/stack";
import { ControlError, InvalidOptionError } from "../errors.js";
import { type AutoforwardControl, handleAutoforward } from "./autoforward.js";
import { handleEgress } from "./egress.js";
import type { EventBus } from "./events.js";
import { allow, decoded, HttpError, readJson } from "./http.js";
import { handleProxy, type ProxyControl } from "./proxy.js";

/** What the API reads and drives. */
export interface ControlTarget {
  status(): unknown;
  forwarder: Forwarder;
  /** The guests' DNS server: its name registry and query log. */
  dns?: Dns;
  /** The stack's egress rules. */
  egress?: Egress;
  events?: EventBus;
  /** Every open flow. */
  flows?(): unknown[];
  /** Re-reads the config file and applies it; rejects (400) when the file is bad, keeping the old one. */
  reload?(): Promise<unknown>;
  /** Automatic forwards (/v1/autoforward); an explicit publish makes room first. */
  autoforward?: AutoforwardControl;
  /** The proxy's settings (/v1/proxy). */
  proxy?: ProxyControl;
  /** Prometheus exposition for GET /metrics. */
  metrics?: { text(): Promise<string>; readonly contentType: string };
}

/** Unsent event bytes a watching client may leave unread before it is cut off. */
const MAX_UNREAD_EVENTS = 1024 * 1024;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

export async function startControlServer(path: string, target: ControlTarget): Promise<ControlServer> {
  if (existsSync(path)) {
    // Replace only a stale socket, never a file that a mistyped path points at.
    if (!lstatSync(path).isSocket()) throw new ControlError(`${path} exists and is not a socket`);
    if (await controlSocketAnswers(path))
      throw new ControlError(
        `${path} is in use by another desktopd: stop that one, or serve this one's control API elsewhere with --control PATH`,
      );
    rmSync(path, { force: true });
  }
  const server = createServer(controlListener(target));
  // Idle keep-alive clients must not hold close() up, and a client that sends its request slowly
  // or never finishes it is cut off (the events stream is a response, not bound by these).
  server.keepAliveTimeout = 1000;
  server.headersTimeout = 5000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  return {
    path,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(path, { force: true });
    },
  };
}

/**
 * The API as a request listener, for the unix socket and for any other server that mounts it
 * (the status page serves it behind its token).
 */
export function controlListener(target: ControlTarget): RequestListener {
  return (req, res) => {
    if (req.url === "/v1/events" && target.events) {
      watch(req, res, target.events);
      return;
    }
    if (req.url === "/metrics" && target.metrics) {
      serveMetrics(req, res, target.metrics);
      return;
    }
    handle(req, target).then(
      ({ status, body }) => send(res, status, body),
      (error: unknown) => {
        if (error instanceof HttpError) send(res, error.status, { error: error.message, code: error.code });
        else if (PortfwdError.isInstance(error))
          send(res, portfwdStatus(error.code), { error: error.message, code: error.code });
        else if (
          DnsError.isInstance(error) ||
          ProxyConfigError.isInstance(error) ||
          ConfigError.isInstance(error) ||
          InvalidOptionError.isInstance(error)
        )
          send(res, 400, { error: error.message, code: error.code });
        else
          send(res, 500, { error: (error as Error).message ?? String(error), code: "ERR_DESKTOPD_CONTROL" });
      },
    );
  };
}

async function handle(
  req: IncomingMessage,
  target: ControlTarget,
): Promise<{ status: number; body: unknown }> {
  const url = new URL(req.url ?? "/", "http://desktopd");
  const parts = url.pathname.split("/").filter(Boolean);
  if (parts[0] !== "v1") throw new HttpError(404, `no such resource: ${url.pathname}`);
  const resource = parts[1];
  if (resource === "status" && parts.length === 2) {
    allow(req, ["GET"]);
    return { status: 200, body: target.status() };
  }
  if (resource === "publish" && parts.length === 2) {
    allow(req, ["GET", "POST"]);
    if (req.method === "GET") return { status: 200, body: target.forwarder.list() };
    const body = await readJson(req);
    const spec = (body as { spec?: unknown } | null)?.spec;
    if (typeof spec !== "string" || spec.trim() === "")
      throw new HttpError(400, 'expected {"spec": "HOST:GUEST"}');
    // An explicit publish always wins over an automatic forward on the same host port.
    if (target.autoforward) {
      for (const m of parsePublishSpec(spec).mappings) {
        await target.autoforward.yieldTo(m.protocol, m.hostIp, m.hostPort);
      }
    }
    return { status: 201, body: await target.forwarder.add(spec) };
  }
  if (resource === "publish" && parts.length === 3) {
    allow(req, ["DELETE"]);
    const closeConnections = url.searchParams.get("close") === "1";
    const id = decoded(parts[2]!);
    return { status: 200, body: await target.forwarder.remove(id, { closeConnections }) };
  }
  if (resource === "flows" && parts.length === 2 && target.flows) {
    allow(req, ["GET"]);
    return { status: 200, body: target.flows() };
  }
  if (resource === "reload" && parts.length === 2 && target.reload) {
    allow(req, ["POST"]);
    return { status: 200, body: await target.reload() };
  }
  if (resource === "dns" && target.dns) return handleDns(req, url, parts.slice(2), target.dns);
  if (resource === "egress" && target.egress) return handleEgress(req, parts.slice(2), target.egress);
  if (resource === "proxy" && target.proxy) return handleProxy(req, parts.slice(2), target.proxy);
  if (resource === "autoforward" && target.autoforward) {
    return handleAutoforward(req, parts.slice(2), target.autoforward);
  }
  throw new HttpError(404, `no such resource: ${url.pathname}`);
}

/** Registrations last until removed unless they give a TTL; at most a year. */
const MAX_NAME_TTL = 365 * 24 * 3600;

async function handleDns(
  req: IncomingMessage,
  url: URL,
  parts: string[],
  dns: Dns,
): Promise<{ status: number; body: unknown }> {
  const entries = (name?: string) =>
    dns.registry
      .entries()
      .filter((e) => name === undefined || e.name === name)
      .map(({ name, address, secondsLeft }) => ({ name, address, ttl: secondsLeft }));
  if (parts[0] === "names" && parts.length === 1) {
    allow(req, ["GET", "POST"]);
    if (req.method === "GET") return { status: 200, body: entries() };
    const body = (await readJson(req)) as { name?: unknown; address?: unknown; ttl?: unknown } | null;
    const { name, address, ttl } = body ?? {};
    if (typeof name !== "string" || typeof address !== "string") {
      throw new HttpError(400, 'expected {"name": "NAME", "address": "IP", "ttl": SECONDS (optional)}');
    }
    if (
      ttl !== undefined &&
      (!Number.isInteger(ttl) || (ttl as number) < 1 || (ttl as number) > MAX_NAME_TTL)
    ) {
      throw new HttpError(400, `ttl must be a whole number of seconds, 1..${MAX_NAME_TTL}`);
    }
    // The record parser checks the name and the address; its "/TYPE" and "*." syntax is not for here.
    if (name.includes("/") || name.startsWith("*.")) {
      throw new HttpError(400, `"${name}" is not a name (wildcards and other types are for --dns-record)`);
    }
    const record = parseRecord(`${name}=${address}`);
    dns.registry.register(record.name, address, ttl === undefined ? {} : { ttlSeconds: ttl as number });
    return { status: 201, body: entries(record.name) };
  }
  if (parts[0] === "names" && parts.length === 2) {
    allow(req, ["DELETE"]);
    const name = normalizeName(decoded(parts[1]!));
    const address = url.searchParams.get("address") ?? undefined;
    const before = entries(name);
    if (!dns.registry.remove(name, address)) {
      throw new HttpError(
        404,
        `${name}${address ? ` → ${address}` : ""} is not registered`,
        "ERR_DESKTOPD_DNS_NOT_FOUND",
      );
    }
    const left = new Set(entries(name).map((e) => e.address));
    return { status: 200, body: before.filter((e) => !left.has(e.address)) };
  }
  if (parts[0] === "log" && parts.length === 1) {
    allow(req, ["GET"]);
    const limitText = url.searchParams.get("limit");
    const limit = limitText === null ? 100 : Number(limitText);
    if (!Number.isInteger(limit) || limit < 1)
      throw new HttpError(400, "limit must be a positive whole number");
    return { status: 200, body: dns.handler.queryLog().slice(-limit) };
  }
  throw new HttpError(404, `no such resource: ${url.pathname}`);
}

/** Streams events as NDJSON; a client that stops reading is cut off rather than buffered for. */
function watch(req: IncomingMessage, res: ServerResponse, events: EventBus): void {
  if (req.method !== "GET") {
    send(res, 405, { error: `${req.method} not allowed (GET)`, code: "ERR_DESKTOPD_CONTROL" });
    return;
  }
  res.writeHead(200, { "content-type": "application/x-ndjson", "cache-control": "no-store" });
  res.flushHeaders();
  const unsubscribe = events.subscribe((event) => {
    if (res.writableLength > MAX_UNREAD_EVENTS) {
      unsubscribe();
      res.destroy();
      return;
    }
    res.write(`${JSON.stringify(event)}\n`);
  });
  res.on("close", unsubscribe);
}

function serveMetrics(
  req: IncomingMessage,
  res: ServerResponse,
  metrics: NonNullable<ControlTarget["metrics"]>,
): void {
  if (req.method !== "GET") {
    send(res, 405, { error: `${req.method} not allowed (GET)`, code: "ERR_DESKTOPD_CONTROL" });
    return;
  }
  metrics.text().then(
    (text) => {
      res.writeHead(200, { "content-type": metrics.contentType, "content-length": Buffer.byteLength(text) });
      res.end(text);
    },
    (error: unknown) => send(res, 500, { error: String(error), code: "ERR_DESKTOPD_CONTROL" }),
  );
}

/** A bad spec is the caller's mistake (400), an unknown forward 404, the rest a conflict on this host (409). */
function portfwdStatus(code: string): number {
  if (code === "ERR_DESKTOPD_PORTFWD_SPEC") return 400;
  if (code === "ERR_DESKTOPD_PORTFWD_NOT_FOUND") return 404;
  return 409;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

/** Whether something accepts connections at `path` (a live daemon, not a stale socket file). */
export function controlSocketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}
