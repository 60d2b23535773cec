/**
 * Seeded network simulation (smoltcp-style): two Connections, one accepting and one
 * connecting, joined by a simulated link that drops, duplicates and reorders segments. Time is
 * a ManualClock advanced event to event; every run is deterministic for its seed.
 */

import { ManualClock, SeededRandom } from "@desktopd/core";
import { describe, expect, it } from "vitest";
import { type CloseReason, Connection, type ConnectionOptions } from "../../src/tcp/connection.js";
import type { TcpState } from "../../src/tcp/state.js";
import { roundTripSegment } from "../../src/testing/tcp-harness.js";
import type { Payload } from "../../src/wire/payload.js";
import { TCP_ACK, TCP_SYN, type TcpEmitFields, type TcpSegment } from "../../src/wire/tcp.js";

interface LinkConfig {
  loss: number;
  duplicate: number;
  delayMs: number;
  jitterMs: number;
}

interface Endpoint {
  name: "client" | "server";
  conn: Connection | undefined;
  data: Buffer;
  written: number;
  blocked: boolean;
  closed: boolean;
  received: Buffer[];
  fin: number;
  reasons: CloseReason[];
  flushWanted: boolean;
  finalState?: TcpState;
}

interface InFlight {
  at: number;
  order: number;
  to: Endpoint;
  seg: TcpSegment;
}

function randomBytes(rng: SeededRandom, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i += 4) out.writeUInt32LE(rng.u32(), i);
  return out;
}

function simulate(link: LinkConfig, seed: number, bytes: number) {
  const clock = new ManualClock();
  const linkRng = new SeededRandom(seed);
  const dataRng = new SeededRandom(seed ^ 0x5a5a5a5a);
  const queue: InFlight[] = [];
  let order = 0;
  const stats = { sent: 0, dropped: 0, duplicated: 0 };

  const mk = (name: Endpoint["name"]): Endpoint => ({
    name,
    conn: undefined,
    data: randomBytes(dataRng, bytes),
    written: 0,
    blocked: false,
    closed: false,
    received: [],
    fin: 0,
    reasons: [],
    flushWanted: false,
  });
  const client = mk("client");
  const server = mk("server");

  const transmit = (to: Endpoint, fields: TcpEmitFields, payload: Payload | undefined) => {
    stats.sent++;
    if (linkRng.float() < link.loss) {
      stats.dropped++;
      return;
    }
    const copies = linkRng.float() < link.duplicate ? 2 : 1;
    if (copies === 2) stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      // Real bytes, parsed back: the receiver gets its own copy, as from a wire.
      const seg = roundTripSegment(fields, payload);
      const at = clock.now() + link.delayMs + Math.floor(linkRng.float() * (link.jitterMs + 1));
      queue.push({ at, order: order++, to, seg });
    }
  };

  const options = (rng: number): ConnectionOptions => ({
    clock,
    random: new SeededRandom(rng),
    mss: 1460,
    sendBuffer: 64 * 1024,
    receiveBuffer: 256 * 1024,
    timeWaitMs: 10_000,
  });
  const hooks = (self: Endpoint, peer: () => Endpoint) => ({
    output: (f: TcpEmitFields, p: Buffer | undefined) => transmit(peer(), f, p),
    onData: (d: Buffer) => {
      self.received.push(Buffer.from(d));
    },
    onEstablished: () => {},
    onFin: () => {
      self.fin++;
    },
    onSendSpace: () => {
      self.blocked = false;
    },
    onClose: (r: CloseReason) => {
      self.reasons.push(r);
    },
    receiveBacklog: () => 0,
    requestFlush: () => {
      self.flushWanted = true;
    },
  });

  /** The application: writes its data as fast as send() allows, then half-closes. */
  const pump = (e: Endpoint) => {
    const c = e.conn;
    if (!c || c.isClosed || e.closed) return;
    while (!e.blocked && e.written < e.data.length) {
      const chunk = e.data.subarray(e.written, Math.min(e.written + 16_384, e.data.length));
      e.written += chunk.length;
      if (!c.send(chunk)) e.blocked = true;
    }
    if (e.written === e.data.length && !e.blocked) {
      e.closed = true;
      c.close();
    }
  };

  client.conn = Connection.connect(
    40000,
    80,
    options(seed + 1),
    hooks(client, () => server),
  );
  pump(client);

  for (let steps = 0; steps < 2_000_000; steps++) {
    const deadlines = [queue.reduce((m, q) => Math.min(m, q.at), Number.POSITIVE_INFINITY)];
    for (const e of [client, server]) {
      const at = e.conn && !e.conn.isClosed ? e.conn.pollAt() : undefined;
      if (at !== undefined) deadlines.push(at);
    }
    const next = Math.min(...deadlines);
    if (next === Number.POSITIVE_INFINITY) break;
    if (next > clock.now()) clock.advance(next - clock.now());
    const now = clock.now();

    // Deliver everything due, in arrival order, as one batch per receiver.
    const due = queue.filter((q) => q.at <= now).sort((x, y) => x.at - y.at || x.order - y.order);
    for (const q of due) queue.splice(queue.indexOf(q), 1);
    for (const q of due) {
      const e = q.to;
      if (!e.conn) {
        if (e === server && q.seg.flags & TCP_SYN && !(q.seg.flags & TCP_ACK)) {
          e.conn = Connection.accept(
            q.seg,
            options(seed + 2),
            hooks(server, () => client),
          );
        }
        continue;
      }
      e.conn.onSegment(q.seg, clock.now());
    }
    for (const e of [client, server]) {
      if (e.conn && e.flushWanted) {
        e.flushWanted = false;
        e.conn.flush();
      }
      if (e.conn) {
        const at = e.conn.pollAt();
        if (at !== undefined && at <= now) e.conn.poll(now);
      }
      pump(e);
    }
    if (client.conn?.isClosed && server.conn?.isClosed) break;
  }
  return { client, server, stats, now: clock.now() };
}

const LOSS = [0, 0.01, 0.05, 0.2];
const DELAY = [
  { delayMs: 1, jitterMs: 0 },
  { delayMs: 20, jitterMs: 30 },
];

describe("seeded network simulation", () => {
  for (const loss of LOSS) {
    for (const d of DELAY) {
      const bytes = loss >= 0.2 ? 256 * 1024 : 1024 * 1024;
      it(`transfers ${bytes >> 10} KiB each way with ${loss * 100}% loss, ${d.delayMs}+${d.jitterMs} ms delay, then both close`, () => {
        const link = { loss, duplicate: loss / 2, ...d };
        const { client, server, stats } = simulate(
          link,
          0xc0ffee + Math.round(loss * 1000) + d.delayMs,
          bytes,
        );
        expect(Buffer.concat(server.received).equals(client.data), "client → server bytes").toBe(true);
        expect(Buffer.concat(client.received).equals(server.data), "server → client bytes").toBe(true);
        expect(client.fin).toBe(1);
        expect(server.fin).toBe(1);
        expect(client.reasons).toEqual(["closed"]);
        expect(server.reasons).toEqual(["closed"]);
        if (loss > 0) expect(stats.dropped).toBeGreaterThan(0);
      });
    }
  }

  it("is deterministic for a seed", () => {
    const link = { loss: 0.05, duplicate: 0.02, delayMs: 5, jitterMs: 10 };
    const a = simulate(link, 42, 64 * 1024);
    const b = simulate(link, 42, 64 * 1024);
    expect(a.stats).toEqual(b.stats);
    expect(a.now).toBe(b.now);
    expect(a.stats.dropped).toBeGreaterThan(0);
  });
});
