/**
 * The transport-neutral server core: one datagram or one TCP byte stream in, responses out,
 * with counters and the query log. The host-socket server and the stack's gateway binding both
 * drive it.
 */
import type { Duplex } from "node:stream";
import { resolution } from "./layer.js";
import { type Clock, type Logger, silentLogger, systemClock } from "./logger.js";
import { encodeResponse, type Query, udpLimit, vetQuery } from "./message.js";
import { describeAnswer, QueryLog, type QueryLogEntry } from "./query-log.js";
import type { Resolver } from "./resolver.js";
import { ResponseCache } from "./response-cache.js";

export interface HandlerOptions {
  resolver: Resolver;
  /** Largest UDP response we send, bytes (default 1232: no IP fragmentation on common paths). */
  maxUdpSize?: number;
  /** Entries the query log keeps (default 1000; 0 turns it off). */
  queryLogSize?: number;
  /** Called with every log entry, e.g. to print it. */
  onQuery?: (entry: QueryLogEntry) => void;
  /** Most queries a TCP connection may have unanswered before it is closed (default 64). */
  maxTcpInflight?: number;
  /** A TCP connection idle this long is closed, ms (default 30 000, RFC 7766 §6.2.3). */
  tcpIdleMs?: number;
  /**
   * Queries being resolved at once, all clients (default 10 000). Beyond it a query is answered
   * SERVFAIL without being resolved: a flood of one name at a silent upstream shares one upstream
   * query but would otherwise hold a pending reply per datagram until the timeout.
   */
  maxInflight?: number;
  /**
   * Encoded answers to repeated identical queries (fixed names, answers from the DNS cache) are
   * served for `lifetimeMs` (default 1000) without decoding or resolving again; at most
   * `maxEntries` (default 1000; 0 turns it off).
   */
  responseCache?: { maxEntries?: number; lifetimeMs?: number };
  logger?: Logger;
  clock?: Clock;
}

export interface DnsCounters {
  queries: { udp: number; tcp: number };
  /** Responses by rcode name. */
  rcodes: Record<string, number>;
  /** Answers by the layer that gave them. */
  layers: Record<string, number>;
  /** Malformed input by reason: short, response, undecodable, questions, opt, opcode, edns-version, tcp-framing. */
  malformed: Record<string, number>;
  truncated: number;
  inflight: number;
  /** Queries answered SERVFAIL at once because `maxInflight` were being resolved. */
  busy: number;
  tcpConnections: { open: number; total: number };
}

export interface DnsHandler {
  /** Answers one message; undefined when it is dropped. `transport` decides truncation. */
  handle(message: Buffer, client: string, transport: "udp" | "tcp"): Promise<Buffer | undefined>;
  /** Serves DNS over a TCP byte stream (RFC 7766: length-prefixed, pipelined) until it ends. */
  serveStream(stream: Duplex, client: string): void;
  counters(): DnsCounters;
  queryLog(): QueryLogEntry[];
  /** Drops the responses kept for repeated queries: a local name changed (see `responseCache`). */
  forgetResponses(): void;
}

export function createDnsHandler(o: HandlerOptions): DnsHandler {
  const clock = o.clock ?? systemClock;
  const log = o.logger ?? silentLogger;
  const maxUdp = o.maxUdpSize ?? 1232;
  const queryLog = new QueryLog(o.queryLogSize ?? 1000);
  const maxInflight = o.maxTcpInflight ?? 64;
  const maxQueries = o.maxInflight ?? 10_000;
  const idleMs = o.tcpIdleMs ?? 30_000;
  const responses = new ResponseCache(o.responseCache?.maxEntries ?? 1000);
  const replayMs = o.responseCache?.lifetimeMs ?? 1000;
  const c: DnsCounters = {
    queries: { udp: 0, tcp: 0 },
    rcodes: {},
    layers: {},
    malformed: {},
    truncated: 0,
    inflight: 0,
    busy: 0,
    tcpConnections: { open: 0, total: 0 },
  };
  const bump = (m: Record<string, number>, k: string) => {
    m[k] = (m[k] ?? 0) + 1;
  };

  const record = (entry: QueryLogEntry) => {
    if (entry.truncated) c.truncated++;
    bump(c.rcodes, entry.rcode);
    bump(c.layers, entry.layer);
    queryLog.add(entry);
    o.onQuery?.(entry);
    log.debug(entry, "dns query");
  };

  const answer = async (
    message: Buffer,
    q: Query,
    client: string,
    transport: "udp" | "tcp",
  ): Promise<Buffer> => {
    const started = clock.now();
    c.inflight++;
    try {
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
        time: Date.now(),
        client,
        transport,
        name: q.question.name,
        type: q.question.type,
        rcode: r.rcode,
        answers: r.answers.map(describeAnswer),
        layer: r.layer,
        cached: r.cached === true,
        truncated,
        latencyMs: clock.now() - started,
        ...(r.error ? { error: r.error.message } : {}),
      };
      record(entry);
      if (r.replayable && (r.rcode === "NOERROR" || r.rcode === "NXDOMAIN") && !r.error) {
        // Never past a record's TTL: a TTL of 0 means "do not keep", and is not replayed.
        const ttls = [...r.answers, ...r.authorities].map((a) => ("ttl" in a ? (a.ttl ?? 0) : 0));
        const lifetimeMs = Math.min(replayMs, ...ttls.map((t) => t * 1000));
        responses.set(message, transport, reply, entry, clock.now(), lifetimeMs);
      }
      return reply;
    } finally {
      c.inflight--;
    }
  };

  const handle: DnsHandler["handle"] = async (message, client, transport) => {
    // The same bytes as a query answered a moment ago: valid, and answered the same way.
    const started = clock.now();
    const hit = message.length >= 12 ? responses.get(message, transport, started) : undefined;
    if (hit) {
      c.queries[transport]++;
      record({
        ...hit.entry,
        time: Date.now(),
        client,
        transport,
        // Replayed: resolved by nobody this time, whatever the first answer was.
        cached: true,
        latencyMs: clock.now() - started,
      });
      return hit.reply;
    }
    const v = vetQuery(message);
    if (!v.ok) {
      bump(c.malformed, v.reason);
      if (v.reply) bump(c.rcodes, v.reason === "opcode" ? "NOTIMP" : "FORMERR");
      return v.reply;
    }
    c.queries[transport]++;
    if (c.inflight >= maxQueries) {
      c.busy++;
      bump(c.rcodes, "SERVFAIL");
      return encodeResponse(v.query, resolution("SERVFAIL"));
    }
    return answer(message, v.query, client, transport);
  };

  return {
    handle,
    serveStream(stream, client) {
      c.tcpConnections.open++;
      c.tcpConnections.total++;
      let buf: Buffer = Buffer.alloc(0);
      let pending = 0;
      let ended = false;
      let idle: NodeJS.Timeout | undefined;
      const touch = () => {
        clearTimeout(idle);
        idle = setTimeout(() => stream.destroy(), idleMs);
        idle.unref?.();
      };
      const whole = () => buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0);
      // After the client's end, close once every whole query it sent is answered.
      const finish = () => {
        if (ended && pending === 0 && !whole() && !stream.writableEnded) stream.end();
      };
      // Takes whole frames off `buf` while the client has room: at most `maxInflight` unanswered
      // and answers it is not reading stop the parsing and the reading (backpressure), so a
      // pipelining or non-reading client holds one read chunk and a bounded write buffer.
      const pump = () => {
        while (buf.length >= 2 && pending < maxInflight && !stream.writableNeedDrain) {
          const len = buf.readUInt16BE(0);
          if (len < 12) {
            // Not even a header: the stream cannot be trusted to stay in frame.
            bump(c.malformed, "tcp-framing");
            stream.destroy();
            return;
          }
          if (buf.length < 2 + len) break;
          const msg = buf.subarray(2, 2 + len);
          buf = buf.subarray(2 + len);
          pending++;
          // Responses go out as they are ready, not in order (RFC 7766 §6.2.1.1): ids match them up.
          handle(msg, client, "tcp")
            .then((reply) => {
              if (reply && !stream.destroyed && !stream.writableEnded) {
                const framed = Buffer.allocUnsafe(2 + reply.length);
                framed.writeUInt16BE(reply.length, 0);
                reply.copy(framed, 2);
                stream.write(framed);
              }
            })
            .catch((e: unknown) => log.warn({ err: e, client }, "dns over tcp: query failed"))
            .finally(() => {
              pending--;
              pump();
              finish();
            });
        }
        const full = pending >= maxInflight || stream.writableNeedDrain;
        if (full) stream.pause();
        else if (!ended) stream.resume();
      };
      touch();
      stream.on("data", (chunk: Buffer) => {
        touch();
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        pump();
      });
      stream.on("drain", pump);
      stream.on("end", () => {
        ended = true;
        finish();
      });
      stream.on("error", () => {});
      stream.on("close", () => {
        clearTimeout(idle);
        c.tcpConnections.open--;
      });
    },
    counters: () => structuredClone(c),
    queryLog: () => queryLog.entries(),
    forgetResponses: () => responses.clear(),
  };
}
