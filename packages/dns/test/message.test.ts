/**
 * Malformed and edge-case queries against the server core, over bytes: random data, truncated
 * messages, compression loops, 0 or 2 questions, responses, other opcodes, EDNS versions,
 * truncation. Each is counted by reason and the core keeps answering.
 */
import * as packet from "dns-packet";
import { describe, expect, it } from "vitest";
import {
  createDnsHandler,
  createFixedLayer,
  createResolver,
  type DnsHandler,
  encodeResponse,
  vetQuery,
} from "../src/index.js";

const longTxt = Array.from({ length: 20 }, (_, i) => `chunk-${i}-${"x".repeat(40)}`);
const handler = (): DnsHandler =>
  createDnsHandler({
    resolver: createResolver([
      createFixedLayer({
        hostAddress: "192.168.65.254",
        records: [{ name: "big.test", type: "TXT", data: longTxt }],
      }),
    ]),
  });

function query(name: string, type: packet.RecordType = "A", extra: Partial<packet.Packet> = {}): Buffer {
  return packet.encode({
    type: "query",
    id: 0x1234,
    flags: packet.RECURSION_DESIRED,
    questions: [{ name, type, class: "IN" }],
    ...extra,
  });
}

const rcodeOf = (b: Buffer) => b.readUInt16BE(2) & 0xf;
const idOf = (b: Buffer) => b.readUInt16BE(0);

async function stillAnswers(h: DnsHandler): Promise<void> {
  const reply = await h.handle(query("host.docker.internal"), "t", "udp");
  const r = packet.decode(reply!);
  expect(r.answers).toMatchObject([{ type: "A", data: "192.168.65.254" }]);
}

describe("malformed queries", () => {
  it("drops datagrams shorter than a header, and responses", async () => {
    const h = handler();
    expect(await h.handle(Buffer.from([1, 2, 3]), "t", "udp")).toBeUndefined();
    const response = packet.encode({ type: "response", id: 1, questions: [{ name: "x.test", type: "A" }] });
    expect(await h.handle(response, "t", "udp")).toBeUndefined();
    expect(h.counters().malformed).toEqual({ short: 1, response: 1 });
    await stillAnswers(h);
  });

  it("answers FORMERR to a truncated question, keeping the id", async () => {
    const h = handler();
    const whole = query("host.docker.internal");
    for (let cut = 13; cut < whole.length; cut += 3) {
      const reply = await h.handle(whole.subarray(0, cut), "t", "udp");
      expect(rcodeOf(reply!)).toBe(1);
      expect(idOf(reply!)).toBe(0x1234);
      expect(reply!.readUInt16BE(4)).toBe(0); // no question echoed
    }
    expect(h.counters().malformed.undecodable).toBeGreaterThan(0);
    await stillAnswers(h);
  });

  it("answers FORMERR to a compression loop instead of following it", async () => {
    const h = handler();
    // Header with one question whose name is a pointer to itself (offset 12).
    const loop = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
    expect(rcodeOf((await h.handle(loop, "t", "udp"))!)).toBe(1);
    // Two pointers at each other.
    const pingPong = Buffer.from([
      0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 14, 0xc0, 12, 0, 1, 0, 1,
    ]);
    expect(rcodeOf((await h.handle(pingPong, "t", "udp"))!)).toBe(1);
    expect(h.counters().malformed.undecodable).toBe(2);
    await stillAnswers(h);
  });

  it("answers FORMERR to 0 and to 2 questions", async () => {
    const h = handler();
    const none = packet.encode({ type: "query", id: 7, questions: [] });
    const two = packet.encode({
      type: "query",
      id: 8,
      questions: [
        { name: "a.test", type: "A" },
        { name: "b.test", type: "A" },
      ],
    });
    expect(rcodeOf((await h.handle(none, "t", "udp"))!)).toBe(1);
    expect(rcodeOf((await h.handle(two, "t", "udp"))!)).toBe(1);
    expect(h.counters().malformed).toEqual({ questions: 2 });
    expect(h.counters().rcodes).toEqual({ FORMERR: 2 });
    await stillAnswers(h);
  });

  it("answers FORMERR to a question name dns-packet cannot give back byte for byte", async () => {
    const h = handler();
    const header = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    // One label "host.docker.internal" (dots inside the label), and a label that is not UTF-8.
    const dotted = Buffer.from([...header, 20, ...Buffer.from("host.docker.internal"), 0, 0, 1, 0, 1]);
    const binary = Buffer.from([...header, 2, 0xff, 0xfe, 0, 0, 1, 0, 1]);
    for (const q of [dotted, binary]) {
      const reply = (await h.handle(q, "t", "udp"))!;
      expect([idOf(reply), rcodeOf(reply)]).toEqual([0x1234, 1]);
    }
    expect(h.counters().malformed).toEqual({ name: 2 });
    // Upper case is the client's own spelling, echoed as sent.
    const mixed = packet.decode((await h.handle(query("Host.Docker.INTERNAL"), "t", "udp"))!);
    expect(mixed.questions?.[0]?.name).toBe("Host.Docker.INTERNAL");
    expect(mixed.answers).toHaveLength(1);
  });

  it("answers NOTIMP to opcodes other than QUERY, and BADVERS to EDNS version 1", async () => {
    const h = handler();
    const update = query("host.docker.internal");
    update.writeUInt16BE(update.readUInt16BE(2) | (5 << 11), 2);
    expect(rcodeOf((await h.handle(update, "t", "udp"))!)).toBe(4);
    const v1 = query("host.docker.internal", "A", {
      additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232, ednsVersion: 1 } as packet.Answer],
    });
    const r = packet.decode((await h.handle(v1, "t", "udp"))!);
    const opt = r.additionals?.find((a) => a.type === "OPT") as packet.OptAnswer;
    expect(opt.extendedRcode).toBe(1);
    expect(h.counters().malformed).toEqual({ opcode: 1, "edns-version": 1 });
  });

  it("survives 2000 seeded random datagrams and still answers", async () => {
    const h = handler();
    let x = 0x2545f491;
    const rand = () => {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      return (x >>> 0) / 0x1_0000_0000;
    };
    for (let i = 0; i < 2000; i++) {
      const buf = Buffer.from(
        Array.from({ length: Math.floor(rand() * 80) }, () => Math.floor(rand() * 256)),
      );
      const reply = await h.handle(buf, "t", "udp");
      if (reply) expect(reply.readUInt16BE(2) & 0x8000).toBe(0x8000);
    }
    const malformed = Object.values(h.counters().malformed).reduce((a, b) => a + b, 0);
    expect(malformed).toBeGreaterThan(1900);
    await stillAnswers(h);
  });
});

describe("EDNS0 and truncation", () => {
  it("sets TC with empty sections when the answer exceeds 512 bytes without EDNS", async () => {
    const h = handler();
    const r = packet.decode((await h.handle(query("big.test", "TXT"), "t", "udp"))!);
    expect(r.flag_tc).toBe(true);
    expect(r.answers).toEqual([]);
    expect(h.counters().truncated).toBe(1);
  });

  it("sends the whole answer within the client's EDNS size, and over TCP", async () => {
    const h = handler();
    const edns = query("big.test", "TXT", {
      additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096 } as packet.Answer],
    });
    const r = packet.decode((await h.handle(edns, "t", "udp"))!);
    expect(r.flag_tc).toBe(false);
    expect((r.answers![0] as packet.TxtAnswer).data).toHaveLength(20);
    // Our own OPT is echoed with our size.
    expect(r.additionals?.find((a) => a.type === "OPT")).toMatchObject({ udpPayloadSize: 1232 });
    const tcp = packet.decode((await h.handle(query("big.test", "TXT"), "t", "tcp"))!);
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toHaveLength(1);
  });

  it("is authoritative for fixed names and copies RD", () => {
    const v = vetQuery(query("host.docker.internal"));
    if (!v.ok) throw new Error(v.reason);
    const r = packet.decode(
      encodeResponse(v.query, {
        rcode: "NOERROR",
        answers: [],
        authorities: [],
        additionals: [],
        authoritative: true,
      }),
    );
    expect([r.flag_aa, r.flag_rd, r.flag_ra, r.flag_qr]).toEqual([true, true, true, true]);
  });
});
