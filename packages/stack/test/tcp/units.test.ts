import { describe, expect, it } from "vitest";
import { Assembler } from "../../src/tcp/assembler.js";
import { NewReno } from "../../src/tcp/congestion.js";
import { RttEstimator } from "../../src/tcp/rtt.js";
import { SendBuffer } from "../../src/tcp/send-buffer.js";
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from "../../src/tcp/seq.js";

const b = (s: string) => Buffer.from(s);

describe("seq arithmetic", () => {
  it("compares across the 2^32 wrap", () => {
    expect(seqAdd(0xffffffff, 1)).toBe(0);
    expect(seqAdd(0xffffff00, 0x200)).toBe(0x100);
    expect(seqAdd(5, -10)).toBe(0xfffffffb);
    expect(seqDiff(0x100, 0xffffff00)).toBe(0x200);
    expect(seqDiff(0xffffff00, 0x100)).toBe(-0x200);
    expect(seqLt(0xffffff00, 0x10)).toBe(true);
    expect(seqGt(0x10, 0xffffff00)).toBe(true);
    expect(seqLe(7, 7) && seqGe(7, 7)).toBe(true);
    expect(seqLt(7, 7) || seqGt(7, 7)).toBe(false);
  });
});

describe("Assembler", () => {
  it("holds segments, merges adjacent SACK blocks, returns contiguous data", () => {
    const a = new Assembler();
    a.insert(110, b("klm"));
    a.insert(105, b("fghij"));
    expect(a.blocks()).toEqual([[105, 113]]);
    expect(a.takeContiguous(100)).toEqual([]);
    a.insert(100, b("abcde"));
    expect(Buffer.concat(a.takeContiguous(100)).toString()).toBe("abcdefghijklm");
    expect(a.size).toBe(0);
    expect(a.count).toBe(0);
  });

  it("trims overlap with the previous and next segments", () => {
    const a = new Assembler();
    a.insert(10, b("AAAA")); // 10..14
    a.insert(20, b("CCCC")); // 20..24
    a.insert(12, b("xxBBBBBByy")); // 12..22: only 14..20 is new
    expect(a.size).toBe(14);
    expect(Buffer.concat(a.takeContiguous(10)).toString()).toBe("AAAABBBBBBCCCC");
  });

  it("a segment covering held ones replaces them", () => {
    const a = new Assembler();
    a.insert(10, b("a"));
    a.insert(12, b("b"));
    a.insert(5, b("0123456789"));
    expect(a.count).toBe(1);
    expect(a.size).toBe(10);
    expect(a.insert(6, b("12")), "fully covered").toBe(true);
    expect(a.size).toBe(10);
  });

  it("takeContiguous skips bytes already delivered", () => {
    const a = new Assembler();
    a.insert(100, b("abcdef"));
    expect(Buffer.concat(a.takeContiguous(103)).toString()).toBe("def");
  });

  it("refuses new segments beyond the segment cap", () => {
    const a = new Assembler(4);
    for (let i = 0; i < 4; i++) expect(a.insert(i * 10, b("x"))).toBe(true);
    expect(a.insert(100, b("y"))).toBe(false);
    expect(a.count).toBe(4);
    expect(a.size).toBe(4);
    expect(a.insert(10, b("x")), "a duplicate needs no slot").toBe(true);
  });

  it("works across the sequence wrap", () => {
    const a = new Assembler();
    a.insert(0, b("cd"));
    a.insert(0xfffffffe, b("ab"));
    expect(a.blocks()).toEqual([[0xfffffffe, 2]]);
    expect(Buffer.concat(a.takeContiguous(0xfffffffe)).toString()).toBe("abcd");
  });

  it("reports at most 3 SACK blocks", () => {
    const a = new Assembler();
    for (let i = 0; i < 5; i++) a.insert(i * 10, b("x"));
    expect(a.blocks()).toHaveLength(3);
  });
});

describe("SendBuffer", () => {
  it("peeks within and across chunks, after partial consumption", () => {
    const s = new SendBuffer();
    s.push(b("hello "));
    s.push(b(""));
    s.push(b("wor"));
    s.push(b("ld!"));
    expect(s.length).toBe(12);
    expect(s.peek(0, 5).toString()).toBe("hello");
    expect(s.peek(4, 6).toString()).toBe("o worl");
    expect(s.peek(8, 100).toString()).toBe("rld!");
    s.consume(7);
    expect(s.length).toBe(5);
    expect(s.peek(0, 5).toString()).toBe("orld!");
    expect(s.peek(1, 3).toString()).toBe("rld");
    s.consume(2);
    expect(s.peek(0, 3).toString()).toBe("ld!");
    expect(s.peek(3, 1).length).toBe(0);
    s.consume(10);
    expect(s.length).toBe(0);
  });

  it("returns a view (no copy) inside one chunk", () => {
    const s = new SendBuffer();
    const chunk = b("abcdef");
    s.push(chunk);
    const v = s.peek(1, 3);
    chunk[1] = 0x5a;
    expect(v.toString()).toBe("Zcd");
  });
});

describe("RttEstimator", () => {
  it("starts at 1 s, doubles on backoff up to 60 s", () => {
    const r = new RttEstimator();
    expect(r.rto).toBe(1000);
    r.backoff();
    expect(r.rto).toBe(2000);
    for (let i = 0; i < 10; i++) r.backoff();
    expect(r.rto).toBe(60_000);
    r.resetBackoff();
    expect(r.rto).toBe(1000);
  });

  it("follows RFC 6298 2.2 and 2.3", () => {
    const r = new RttEstimator();
    r.sample(400);
    expect(r.smoothed).toBe(400);
    expect(r.rto).toBe(400 + 4 * 200);
    r.sample(200);
    // RTTVAR = 3/4·200 + 1/4·|400 − 200| = 200; SRTT = 7/8·400 + 1/8·200 = 375.
    expect(r.smoothed).toBe(375);
    expect(r.rto).toBe(375 + 800);
  });

  it("floors at 200 ms and a sample clears the backoff", () => {
    const r = new RttEstimator();
    r.backoff();
    r.sample(1);
    expect(r.rto).toBe(200);
  });
});

describe("NewReno", () => {
  it("initial window 10 MSS (RFC 6928), slow start, congestion avoidance", () => {
    const c = new NewReno(1000);
    expect(c.cwnd).toBe(10_000);
    c.onAck(5000);
    expect(c.cwnd).toBe(11_000); // at most one MSS per ACK
    c.onTimeout(20_000);
    expect(c.ssthresh).toBe(10_000);
    expect(c.cwnd).toBe(1000);
    c.cwnd = 10_000;
    c.onAck(1000);
    expect(c.cwnd).toBe(10_100); // MSS²/cwnd
  });

  it("fast retransmit, inflation, deflation", () => {
    const c = new NewReno(1000);
    c.onFastRetransmit(10_000, 12345);
    expect(c.ssthresh).toBe(5000);
    expect(c.cwnd).toBe(8000);
    expect(c.recoverySeq).toBe(12345);
    c.onDupAckInRecovery();
    expect(c.cwnd).toBe(9000);
    c.onRecoveryEnd();
    expect(c.cwnd).toBe(5000);
    expect(c.recoverySeq).toBeUndefined();
  });

  it("ssthresh never below 2 MSS", () => {
    const c = new NewReno(1000);
    c.onFastRetransmit(1000, 1);
    expect(c.ssthresh).toBe(2000);
  });
});
