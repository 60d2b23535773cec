/**
 * The batched UDP socket (recvmmsg/sendmmsg through koffi) on loopback, and the listener on top
 * of it against the node:dgram one: same answers, same client addresses, queued datagrams taken
 * in batches, oversize ones dropped, a port in use refused with its errno.
 */
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import * as packet from "dns-packet";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { createDns, DnsSocketError, listenDns } from "../src/index.js";
import { canonicalIpv6 } from "../src/name.js";
import { BatchUdpSocket, batchedUdpSupported, sockaddrOf, sockaddrText } from "../src/udp-batch.js";

const supported = batchedUdpSupported();
if (!supported) {
  console.warn(
    `SKIPPED: batched UDP needs 64-bit Linux; this is ${process.platform}/${process.arch} (node:dgram is used there)`,
  );
}

const query = (id: number, name = "host.docker.internal") =>
  packet.encode({ type: "query", id, flags: packet.RECURSION_DESIRED, questions: [{ name, type: "A" }] });

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function client(type: "udp4" | "udp6" = "udp4"): Promise<Socket> {
  const s = createSocket(type);
  s.bind(0, type === "udp4" ? "127.0.0.1" : "::1");
  await once(s, "listening");
  cleanup.push(() => s.close());
  return s;
}

/** Sends `queries` at once and collects one answer per id (or fails the test by timing out). */
async function ask(
  s: Socket,
  port: number,
  host: string,
  queries: Buffer[],
): Promise<Map<number, packet.Packet>> {
  const answers = new Map<number, packet.Packet>();
  const done = new Promise<void>((resolve) => {
    s.on("message", (m) => {
      const p = packet.decode(m);
      answers.set(p.id!, p);
      if (answers.size === queries.length) resolve();
    });
  });
  for (const q of queries) s.send(q, port, host);
  await done;
  return answers;
}

describe("sockaddr text", () => {
  it("spells every IPv6 sender as RFC 5952 does (the spelling node:dgram and URL use)", () => {
    fc.assert(
      fc.property(fc.ipV6(), fc.integer({ min: 0, max: 65535 }), (ip, port) => {
        const sa = sockaddrOf(ip, port)!;
        const text = sockaddrText(sa, 0);
        const mapped = /^::ffff:(\d+\.){3}\d+$/.test(canonicalFormWithDots(ip));
        if (!mapped) expect(text).toBe(`${canonicalIpv6(ip)}:${port}`);
        expect(sockaddrOf(text.slice(0, text.lastIndexOf(":")), port)!.equals(sa)).toBe(true);
      }),
    );
  });

  it("spells IPv4 senders, also mapped ones on a dual-stack socket, as node:dgram does", () => {
    expect(sockaddrText(sockaddrOf("10.1.200.3", 5353)!, 0)).toBe("10.1.200.3:5353");
    expect(sockaddrText(sockaddrOf("::ffff:127.0.0.1", 9)!, 0)).toBe("::ffff:127.0.0.1:9");
    expect(sockaddrText(sockaddrOf("fd00:0:0:1::", 1)!, 0)).toBe("fd00:0:0:1:::1");
    expect(sockaddrText(sockaddrOf("1:0:0:2:0:0:0:3", 1)!, 0)).toBe("1:0:0:2::3:1");
  });

  it("takes address literals only", () => {
    for (const host of ["localhost", "1.2.3", "01.2.3.4", "256.1.1.1", "fe80::1%lo", "::g"]) {
      expect(sockaddrOf(host, 53)).toBeUndefined();
    }
  });
});

/** How URL writes an address, with a mapped IPv4 tail in dots: what tells mapped ones apart. */
function canonicalFormWithDots(ip: string): string {
  const c = canonicalIpv6(ip);
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(c);
  if (!m) return c;
  const hi = Number.parseInt(m[1]!, 16);
  const lo = Number.parseInt(m[2]!, 16);
  return `::ffff:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}

describe.skipIf(!supported)("BatchUdpSocket", () => {
  it("takes the datagrams queued before it reads in batches, and answers each to its sender", async () => {
    const socket = await BatchUdpSocket.bind("127.0.0.1", 0, { batch: 16 });
    cleanup.push(() => socket.close());
    const a = await client();
    const b = await client();
    const got = new Map<string, number[]>();
    const all = new Promise<void>((resolve) => {
      const note = (who: string) => (m: Buffer) => {
        got.set(who, [...(got.get(who) ?? []), m.readUInt16BE(0)]);
        if ((got.get("a")?.length ?? 0) + (got.get("b")?.length ?? 0) === 40) resolve();
      };
      a.on("message", note("a"));
      b.on("message", note("b"));
    });
    // 40 datagrams wait in the kernel before the loop starts: the first call takes 16 of them.
    for (let i = 0; i < 20; i++) {
      a.send(Buffer.from([0, i]), socket.port, "127.0.0.1");
      b.send(Buffer.from([1, i]), socket.port, "127.0.0.1");
    }
    await new Promise((r) => setTimeout(r, 100));
    const sizes: number[] = [];
    const clients = new Set<string>();
    socket.start(
      (batch) => {
        sizes.push(batch.count);
        for (let i = 0; i < batch.count; i++) {
          clients.add(batch.client(i));
          batch.reply(i, batch.data(i));
        }
      },
      (e) => {
        throw e;
      },
    );
    await all;
    expect(sizes[0]).toBe(16);
    expect(sizes.reduce((x, y) => x + y, 0)).toBe(40);
    expect(clients).toEqual(new Set([a, b].map((s) => `127.0.0.1:${s.address().port}`)));
    // Each sender got its own 20 echoes back, in order.
    expect(got.get("a")).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(got.get("b")).toEqual(Array.from({ length: 20 }, (_, i) => 256 + i));
    expect(socket.counters()).toMatchObject({ received: 40, sent: 40, sendFailed: 0, batches: sizes.length });
  });

  it("flags a datagram longer than its room, answers later with sendTo, and closes while reading", async () => {
    const socket = await BatchUdpSocket.bind("::1", 0, { maxDatagram: 512 });
    const c = await client("udp6");
    const seen: { length: number; truncated: boolean }[] = [];
    const answered = once(c, "message");
    socket.start(
      (batch) => {
        for (let i = 0; i < batch.count; i++) {
          seen.push({ length: batch.data(i).length, truncated: batch.truncated(i) });
          const to = batch.sender(i);
          if (!batch.truncated(i)) setTimeout(() => socket.sendTo(Buffer.from("later"), to), 10);
        }
      },
      (e) => {
        throw e;
      },
    );
    c.send(Buffer.alloc(2000, 7), socket.port, "::1");
    c.send(Buffer.alloc(100, 7), socket.port, "::1");
    const [reply] = await answered;
    expect((reply as Buffer).toString()).toBe("later");
    expect(seen).toEqual([
      { length: 512, truncated: true },
      { length: 100, truncated: false },
    ]);
    // The receive call is blocked on a worker thread: close() must wake it and end the loop.
    await socket.close();
    await socket.close();
  });

  it("refuses a port in use with EADDRINUSE", async () => {
    const socket = await BatchUdpSocket.bind("127.0.0.1", 0);
    cleanup.push(() => socket.close());
    const error = await BatchUdpSocket.bind("127.0.0.1", socket.port).catch((e: unknown) => e);
    expect(DnsSocketError.isInstance(error)).toBe(true);
    expect((error as DnsSocketError).errno).toBe("EADDRINUSE");
  });
});

describe.each([
  { kind: "batched", batchedUdp: true },
  { kind: "node:dgram", batchedUdp: false },
])("listenDns over $kind UDP", ({ kind, batchedUdp }) => {
  /** A DNS server with no upstream (fixed names only) behind a UDP listener of this kind. */
  async function serving(host?: string) {
    const dns = createDns({ hostAddress: "192.168.65.254", host: { mode: "nameservers", nameservers: [] } });
    const listener = await listenDns(dns.handler, {
      ...(host ? { host } : {}),
      port: 0,
      tcp: false,
      batchedUdp,
    });
    cleanup.push(() => listener.close());
    return { dns, listener };
  }

  it.skipIf(kind === "batched" && !supported)(
    "answers 300 queries sent at once, replayed ones too, under each client's address",
    async () => {
      const { dns, listener } = await serving();
      const c = await client();
      const answers = await ask(
        c,
        listener.port,
        listener.host,
        Array.from({ length: 300 }, (_, i) => query(i + 1)),
      );
      for (const [id, p] of answers) {
        expect(p.answers?.[0]).toMatchObject({ type: "A", data: "192.168.65.254" });
        expect(id).toBeGreaterThan(0);
      }
      expect(dns.handler.counters()).toMatchObject({ queries: { udp: 300 }, rcodes: { NOERROR: 300 } });
      const clients = new Set(dns.handler.queryLog().map((e) => e.client));
      expect(clients).toEqual(new Set([`127.0.0.1:${c.address().port}`]));
    },
  );

  it.skipIf(kind === "batched" && !supported)(
    "on a dual-stack socket, names an IPv4 client as a mapped address",
    async () => {
      const { dns, listener } = await serving("::");
      const c4 = await client("udp4");
      const c6 = await client("udp6");
      await ask(c4, listener.port, "127.0.0.1", [query(1)]);
      await ask(c6, listener.port, "::1", [query(2)]);
      expect(dns.handler.queryLog().map((e) => e.client)).toEqual([
        `::ffff:127.0.0.1:${c4.address().port}`,
        `::1:${c6.address().port}`,
      ]);
    },
  );

  it.skipIf(kind === "batched" && !supported)(
    "drops a datagram too long to be a query, counted, and answers the next",
    async () => {
      const { dns, listener } = await serving();
      const c = await client();
      // A real query padded far past any receive room: cut, it would still decode as one.
      const padded = Buffer.concat([query(1), Buffer.alloc(8000)]);
      c.send(padded, listener.port, listener.host);
      const answers = await ask(c, listener.port, listener.host, [query(2)]);
      expect([...answers.keys()]).toEqual([2]);
      expect(dns.handler.counters()).toMatchObject({ queries: { udp: 1 }, malformed: { oversize: 1 } });
    },
  );
});
