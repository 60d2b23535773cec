/**
 * The server core fed arbitrary datagrams and mutations of real queries, over UDP and TCP: it never
 * throws, answers every query with a reply that parses (FORMERR, NOTIMP, SERVFAIL, REFUSED where
 * due), fits the client's UDP size, and stays silent only for what is not a query.
 */
import { Duplex } from "node:stream";
import { bytes, fc, fuzzAsync, mutated } from "@desktopd/fuzz";
import * as packet from "dns-packet";
import { describe, expect, it } from "vitest";
import {
  createDnsHandler,
  createFixedLayer,
  createRegistry,
  createResolver,
  type DnsHandler,
  type Layer,
  udpLimit,
  vetQuery,
} from "../../src/index.js";

function handler(): DnsHandler {
  const registry = createRegistry({ subnets: ["192.168.65.0/24", "fd00::/64"] });
  registry.register("web.containers.internal", "192.168.65.7");
  registry.register("web.containers.internal", "fd00::7");
  // A layer that fails, for SERVFAIL.
  const failing: Layer = {
    name: "failing",
    resolve: (q) => (q.name.endsWith(".fail") ? Promise.reject(new Error("upstream down")) : undefined),
  };
  const fixed = createFixedLayer({
    hostAddress: "192.168.65.254",
    gatewayAddress: "192.168.65.1",
    records: [
      {
        name: "big.test",
        type: "TXT",
        data: Array.from({ length: 20 }, (_, i) => `chunk-${i}-${"x".repeat(40)}`),
      },
      { name: "*.apps.internal", type: "A", data: "10.0.0.7" },
      { name: "alias.internal", type: "CNAME", data: "web.containers.internal" },
      { name: "svc.internal", type: "MX", data: { exchange: "mx.internal" } },
      { name: "_http._tcp.svc.internal", type: "SRV", data: { port: 80, target: "web.containers.internal" } },
    ],
  });
  return createDnsHandler({ resolver: createResolver([fixed, registry, failing]) });
}

const RCODES = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 };
const name = fc.oneof(
  fc.constantFrom(
    "host.docker.internal",
    "gateway.docker.internal",
    "Big.Test.",
    "x.apps.internal",
    "alias.internal",
    "svc.internal",
    "_http._tcp.svc.internal",
    "web.containers.internal",
    "7.65.168.192.in-addr.arpa",
    "9.65.168.192.in-addr.arpa",
    "7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa",
    "down.fail",
    "elsewhere.example",
    ".",
  ),
  fc
    .array(fc.stringMatching(/^[a-zA-Z0-9_-]{1,20}$/), { minLength: 1, maxLength: 5 })
    .map((l) => l.join(".")),
);
const question = fc.record({
  name,
  type: fc.constantFrom(
    "A",
    "AAAA",
    "TXT",
    "PTR",
    "CNAME",
    "MX",
    "SRV",
    "ANY",
    "AXFR",
    "IXFR",
    "SOA",
    "UNKNOWN_65",
  ),
  class: fc.constantFrom("IN", "IN", "IN", "CH", "ANY"),
});
const opt = fc.record({
  type: fc.constant("OPT" as const),
  name: fc.constant("."),
  udpPayloadSize: fc.oneof(fc.constant(4096), fc.integer({ min: 0, max: 0xffff })),
  ednsVersion: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })),
  flags: fc.integer({ min: 0, max: 0xffff }),
  options: fc.array(fc.record({ code: fc.integer({ min: 0, max: 0xffff }), data: bytes(8) }), {
    maxLength: 2,
  }),
});
/** Queries as clients build them: one question mostly, RD and other header bits, EDNS or not. */
const query = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffff }),
    flags: fc.oneof(fc.constant(0x0100), fc.integer({ min: 0, max: 0xffff })),
    questions: fc.oneof({ weight: 8, arbitrary: fc.tuple(question) }, fc.array(question, { maxLength: 3 })),
    additionals: fc.oneof(fc.constant([]), fc.tuple(opt), fc.array(opt, { maxLength: 2 })),
  })
  .map((q) =>
    packet.encode({
      type: "query",
      ...q,
      // "ANY" and "UNKNOWN_65" are types dns-packet encodes but leaves out of RecordType.
      questions: q.questions as packet.Question[],
      additionals: q.additionals as packet.Answer[],
    }),
  );
const message = fc.oneof(query, mutated(query), bytes(80));

/** What a client may expect of the reply to `input`. */
function checkReply(input: Buffer, reply: Buffer | undefined, transport: "udp" | "tcp"): void {
  if (input.length < 12 || input[2]! & 0x80) {
    expect(reply, "answered what is not a query").toBeUndefined();
    return;
  }
  expect(reply).toBeDefined();
  const r = packet.decode(reply!);
  expect(r.id).toBe(input.readUInt16BE(0));
  expect(r.flag_qr).toBe(true);
  const rcode = reply!.readUInt16BE(2) & 0xf;
  expect(Object.values(RCODES)).toContain(rcode);
  const v = vetQuery(input);
  if (!v.ok) {
    // FORMERR, NOTIMP (other opcodes) or BADVERS (an EDNS version we do not speak).
    expect([RCODES.FORMERR, RCODES.NOTIMP, RCODES.NOERROR]).toContain(rcode);
    return;
  }
  // The question is echoed byte for byte: the client matches the reply by it.
  const echoed = packet.encode({ type: "query", id: 0, questions: r.questions }).subarray(12);
  expect(r.questions).toHaveLength(1);
  expect(input.subarray(12, 12 + echoed.length).equals(echoed)).toBe(true);
  if (transport === "udp") expect(reply!.length).toBeLessThanOrEqual(udpLimit(v.query, 1232));
  if (r.flag_tc) expect([r.answers?.length, r.authorities?.length]).toEqual([0, 0]);
  if (["AXFR", "IXFR"].includes(v.query.question.type)) expect(rcode).toBe(RCODES.REFUSED);
}

describe("DNS handler", () => {
  it("answers arbitrary datagrams and mutated queries, and keeps answering", async () => {
    const h = handler();
    await fuzzAsync(
      "dns-handler",
      "arbitrary messages",
      fc.tuple(message, fc.constantFrom("udp" as const, "tcp" as const)),
      async ([input, transport]) => {
        checkReply(input, await h.handle(input, "fuzz", transport), transport);
        expect(h.counters().inflight).toBe(0);
      },
      1000,
    );
    const reply = packet.decode(
      (await h.handle(
        packet.encode({ type: "query", id: 1, questions: [{ name: "host.docker.internal", type: "A" }] }),
        "t",
        "udp",
      ))!,
    );
    expect(reply.answers).toMatchObject([{ type: "A", data: "192.168.65.254" }]);
  });

  it("serves arbitrary TCP byte streams: every reply framed and parseable, the stream always ends", async () => {
    const frames = fc
      .array(
        fc.oneof(
          query.map((q) => Buffer.concat([Buffer.of(q.length >> 8, q.length & 0xff), q])),
          bytes(40),
        ),
        {
          maxLength: 5,
        },
      )
      .chain((parts) => {
        const all = Buffer.concat(parts);
        // The same bytes cut into arbitrary reads.
        return fc
          .uniqueArray(fc.integer({ min: 1, max: Math.max(1, all.length - 1) }), { maxLength: 4 })
          .map((cuts) => {
            const at = [0, ...cuts.filter((c) => c < all.length).sort((a, b) => a - b), all.length];
            return at.slice(1).map((end, i) => all.subarray(at[i], end));
          });
      });
    const h = handler();
    await fuzzAsync(
      "dns-handler",
      "tcp streams",
      frames,
      async (chunks) => {
        const out: Buffer[] = [];
        const stream = new Duplex({
          read() {},
          write(chunk: Buffer, _encoding, done) {
            out.push(chunk);
            done();
          },
        });
        const ended = new Promise<void>((resolve) => {
          stream.on("finish", resolve);
          stream.on("close", resolve);
        });
        h.serveStream(stream, "fuzz");
        for (const c of chunks) stream.push(c);
        stream.push(null);
        await ended;
        let rest = Buffer.concat(out);
        while (rest.length > 0) {
          const len = rest.readUInt16BE(0);
          expect(packet.decode(rest.subarray(2, 2 + len)).flag_qr).toBe(true);
          rest = rest.subarray(2 + len);
        }
        stream.destroy();
      },
      300,
    );
  });
});
