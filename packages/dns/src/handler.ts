/**
 * The transport-neutral server core: one datagram or one TCP byte stream in, responses out,
 * with counters and the query log. The host-socket server and the stack's gateway binding both
 * drive it. Every client is untrusted: the work one may start (queries being resolved, TCP
 * connections) is capped per client address and in total, and all it leaves behind (log
 * entries, replayable responses, names) is bounded by bytes.
 */
import type { Duplex } from "node:stream";
import { type Clock, type Logger, type Now, silentLogger, systemClock, wallClock } from "@desktopd/core";
import type { StoreCounters } from "./bounded-map.js";
import type { CacheCounters, DnsCache } from "./cache.js";
import { resolution } from "./layer.js";
import { ClientLimiter, clientAddress } from "./limiter.js";
import { encodeResponse, type Query, udpLimit, vetQuery } from "./message.js";
import { type AddressNames, addressNames, type NameBook, type NameBookCounters } from "./name-book.js";
import { describeAnswers, QueryLog, type QueryLogEntry } from "./query-log.js";
import type { Resolver } from "./resolver.js";
import { ResponseCache } from "./response-cache.js";
import { estimateBytes } from "./size.js";
import { createStreamServer, type TcpCounters } from "./tcp-stream.js";

export interface HandlerOptions {
  resolver: Resolver;
  /** Largest UDP response we send, bytes (default 1232: no IP fragmentation on common paths). */
  maxUdpSize?: number;
  /** Entries the query log keeps (default 1000; 0 turns it off). */
  queryLogSize?: number;
  /** Estimated bytes the query log keeps (default 1 MiB). */
  queryLogBytes?: number;
  /** Called with every log entry, e.g. to print it or feed metrics; one that throws is logged, not fatal. */
  onQuery?: (entry: QueryLogEntry) => void;
  /**
   * Queries being resolved at once, all clients (default 1024). Beyond it, or beyond
   * `maxInflightPerClient` for the query's client address (default 256), the query is answered
   * REFUSED at once without being resolved: a flood at a silent upstream would otherwise hold a
   * pending reply per datagram until the timeout, and one guest could starve the others.
   */
  maxInflight?: number;
  maxInflightPerClient?: number;
  /** Most queries a TCP connection may have unanswered before it is no longer read (default 64). */
  maxTcpInflight?: number;
  /** A TCP connection without a byte from its client this long is closed, ms (default 30 000, RFC 7766 §6.2.3). */
  tcpIdleMs?: number;
  /**
   * TCP connections open at once, all clients (default 256), and per client address (default
   * 64); a connection beyond either is closed as it arrives.
   */
  maxTcpConnections?: number;
  maxTcpConnectionsPerClient?: number;
  /**
   * Encoded answers to repeated identical queries (fixed names, answers from the DNS cache) are
   * served for `lifetimeMs` (default 1000) without decoding or resolving again; at most
   * `maxEntries` (default 1000; 0 turns it off) and `maxBytes` (default 1 MiB).
   */
  responseCache?: { maxEntries?: number; maxBytes?: number; lifetimeMs?: number };
  /** The DNS cache, whose counters `counters().cache` reports (`createDns` passes its own). */
  cache?: DnsCache;
  /** Records the addresses of every A/AAAA answer sent, per client address (see `NameBook`). */
  names?: NameBook;
  logger?: Logger;
  clock?: Clock;
  /** Stamps the query log's entries (default: the system's wall clock). */
  wallClock?: Now;
}

export interface DnsCounters {
  queries: { udp: number; tcp: number };
  /** Responses by rcode name. */
  rcodes: Record<string, number>;
  /** Answers by the layer that gave them. */
  layers: Record<string, number>;
  /** Malformed input by reason: short, oversize, response, undecodable, questions, opt, opcode, edns-version, tcp-framing. */
  malformed: Record<string, number>;
  truncated: number;
  /** Queries being resolved now. */
  inflight: number;
  /**
   * Limits hit, by reason. Queries answered REFUSED at once: "client-inflight"
   * (`maxInflightPerClient`), "inflight" (`maxInflight`). TCP connections closed on arrival:
   * "tcp-client" (`maxTcpConnectionsPerClient`), "tcp-connections" (`maxTcpConnections`). Times a
   * connection stopped being read with `maxTcpInflight` queries unanswered: "tcp-pipeline".
   */
  limited: Record<string, number>;
  tcpConnections: TcpCounters;
  queryLog: Omit<StoreCounters, "expired">;
  responseCache: StoreCounters;
  /** With `cache`. */
  cache?: CacheCounters;
  /** With `names`. */
  names?: NameBookCounters;
}

export interface DnsHandler {
  /**
   * Answers one message; undefined when it is dropped. `transport` decides truncation; `client`
   * is "address:port" (its address is what the per-client limits and the name book go by).
   */
  handle(message: Buffer, client: string, transport: "udp" | "tcp"): Promise<Buffer | undefined>;
  /**
   * The answer to a query repeated within the response cache's lifetime, at once, or undefined
   * (then `handle` it). What `handle` does first; a transport that can answer in the same turn
   * (a batch of datagrams) calls it itself and skips a promise per query. `message` is only read
   * during the call.
   */
  replay(message: Buffer, client: string, transport: "udp" | "tcp"): Buffer | undefined;
  /** Serves DNS over a TCP byte stream (RFC 7766: length-prefixed, pipelined) until it ends. */
  serveStream(stream: Duplex, client: string): void;
  counters(): DnsCounters;
  queryLog(): QueryLogEntry[];
  /** Drops the responses kept for repeated queries: a local name changed (see `responseCache`). */
  forgetResponses(): void;
}

/** One map of counts by reason, as the counters show them. */
type Tally = Record<string, number>;
const bump = (m: Tally, k: string) => {
  m[k] = (m[k] ?? 0) + 1;
};

export function createDnsHandler(o: HandlerOptions): DnsHandler {
  const clock = o.clock ?? systemClock;
  const wall = o.wallClock ?? wallClock;
  const log = o.logger ?? silentLogger;
  const maxUdp = o.maxUdpSize ?? 1232;
  const queryLog = new QueryLog({
    maxEntries: o.queryLogSize ?? 1000,
    ...(o.queryLogBytes !== undefined ? { maxBytes: o.queryLogBytes } : {}),
  });
  const inflight = new ClientLimiter(o.maxInflightPerClient ?? 256, o.maxInflight ?? 1024);
  const connections = new ClientLimiter(o.maxTcpConnectionsPerClient ?? 64, o.maxTcpConnections ?? 256);
  const responses = new ResponseCache({
    ...(o.responseCache?.maxEntries !== undefined ? { maxEntries: o.responseCache.maxEntries } : {}),
    ...(o.responseCache?.maxBytes !== undefined ? { maxBytes: o.responseCache.maxBytes } : {}),
  });
  const replayMs = o.responseCache?.lifetimeMs ?? 1000;
  const names = o.names;
  const c = {
    queries: { udp: 0, tcp: 0 },
    rcodes: {} as Tally,
    layers: {} as Tally,
    malformed: {} as Tally,
    limited: {} as Tally,
    truncated: 0,
    tcpConnections: { open: 0, total: 0, idleClosed: 0 },
  };

  const record = (entry: QueryLogEntry, bytes = QueryLog.bytesOf(entry)) => {
    if (entry.truncated) c.truncated++;
    bump(c.rcodes, entry.rcode);
    bump(c.layers, entry.layer);
    queryLog.add(entry, bytes);
    try {
      o.onQuery?.(entry);
    } catch (error) {
      // An observer's bug must not cost the guest its answer.
      log.error({ err: (error as Error)?.stack ?? String(error) }, "dns onQuery listener failed");
    }
    log.debug(entry, "dns query");
  };

  const answer = async (
    message: Buffer,
    q: Query,
    client: string,
    address: string,
    transport: "udp" | "tcp",
  ): Promise<Buffer> => {
    const started = clock.now();
    let r = await o.resolver.resolve(q.question);
    const limit = transport === "udp" ? udpLimit(q, maxUdp) : 0xffff;
    let reply: Buffer;
    try {
      reply = encodeResponse(q, r, limit, maxUdp);
    } catch (e) {
      // An upstream record dns-packet decoded but cannot encode again: fail this query only.
      r = { ...r, rcode: "SERVFAIL", answers: [], authorities: [], additionals: [], error: e as Error };
      reply = encodeResponse(q, r, limit, maxUdp);
    }
    const truncated = reply.length < 12 ? false : (reply.readUInt16BE(2) & 0x0200) !== 0;
    const entry: QueryLogEntry = {
      time: wall.now(),
      client,
      transport,
      name: q.question.name,
      type: q.question.type,
      rcode: r.rcode,
      answers: describeAnswers(r.answers),
      layer: r.layer,
      cached: r.cached === true,
      truncated,
      latencyMs: clock.now() - started,
      ...(r.error ? { error: r.error.message } : {}),
    };
    const entryBytes = QueryLog.bytesOf(entry);
    record(entry, entryBytes);
    // Only what the client was sent: a truncated answer carries no records.
    const addresses: AddressNames[] =
      names && !truncated && r.rcode === "NOERROR" ? addressNames(q.question.name, r.answers) : [];
    names?.add(address, addresses);
    if (r.replayable && (r.rcode === "NOERROR" || r.rcode === "NXDOMAIN") && !r.error) {
      // Never past a record's TTL: a TTL of 0 means "do not keep", and is not replayed.
      const ttls = [...r.answers, ...r.authorities].map((a) => ("ttl" in a ? (a.ttl ?? 0) : 0));
      const lifetimeMs = Math.min(replayMs, ...ttls.map((t) => t * 1000));
      responses.set(message, transport, { reply, entry, entryBytes, addresses }, clock.now(), lifetimeMs);
    }
    return reply;
  };

  const replay: DnsHandler["replay"] = (message, client, transport) => {
    // The same bytes as a query answered a moment ago: valid, and answered the same way.
    if (message.length < 12) return undefined;
    const started = clock.now();
    const hit = responses.get(message, transport, started);
    if (!hit) return undefined;
    c.queries[transport]++;
    record(
      {
        ...hit.entry,
        time: wall.now(),
        client,
        transport,
        // Replayed: resolved by nobody this time, whatever the first answer was.
        cached: true,
        latencyMs: clock.now() - started,
      },
      // The same entry but for the client: its size is known but for that.
      hit.entryBytes - estimateBytes(hit.entry.client) + estimateBytes(client),
    );
    if (names && hit.addresses.length > 0) names.add(clientAddress(client), hit.addresses);
    return hit.reply;
  };

  const handle: DnsHandler["handle"] = async (message, client, transport) => {
    const replayed = replay(message, client, transport);
    if (replayed) return replayed;
    const address = clientAddress(client);
    const v = vetQuery(message);
    if (!v.ok) {
      bump(c.malformed, v.reason);
      if (v.reply) bump(c.rcodes, v.reason === "opcode" ? "NOTIMP" : "FORMERR");
      return v.reply;
    }
    c.queries[transport]++;
    const refused = inflight.acquire(address);
    if (refused) {
      // REFUSED, not SERVFAIL: the name did not fail, this server declines for now (policy). A
      // stub tries its next server, and counters tell it apart from an upstream's failures.
      bump(c.limited, refused === "client" ? "client-inflight" : "inflight");
      bump(c.rcodes, "REFUSED");
      return encodeResponse(v.query, resolution("REFUSED"));
    }
    try {
      return await answer(message, v.query, client, address, transport);
    } finally {
      inflight.release(address);
    }
  };

  const serveStream = createStreamServer({
    handle: (message, client) => handle(message, client, "tcp"),
    connections,
    maxInflight: o.maxTcpInflight ?? 64,
    idleMs: o.tcpIdleMs ?? 30_000,
    clock,
    log,
    counters: c.tcpConnections,
    limited: (reason) => bump(c.limited, reason),
    malformed: (reason) => bump(c.malformed, reason),
  });

  return {
    handle,
    replay,
    serveStream,
    counters: () => ({
      ...structuredClone(c),
      inflight: inflight.inUse,
      queryLog: queryLog.counters(),
      responseCache: responses.counters(),
      ...(o.cache ? { cache: o.cache.counters() } : {}),
      ...(names ? { names: names.counters() } : {}),
    }),
    queryLog: () => queryLog.entries(),
    forgetResponses: () => responses.clear(),
  };
}
