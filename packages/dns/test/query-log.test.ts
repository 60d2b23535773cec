/** The query log: bounded by entries and by bytes, oldest out first; long answers cut for reading. */
import { describe, expect, it } from "vitest";
import { describeAnswer, describeAnswers, QueryLog, type QueryLogEntry } from "../src/query-log.js";

const entry = (name: string, answers: string[] = []): QueryLogEntry => ({
  time: 0,
  client: "192.168.65.3:40000",
  transport: "udp",
  name,
  type: "TXT",
  rcode: "NOERROR",
  answers,
  layer: "host",
  cached: false,
  truncated: false,
  latencyMs: 1,
});

describe("QueryLog", () => {
  it("keeps the most recent entries, oldest first", () => {
    const log = new QueryLog({ maxEntries: 3 });
    for (const n of ["a", "b", "c", "d"]) log.add(entry(n));
    expect(log.entries().map((e) => e.name)).toEqual(["b", "c", "d"]);
    expect(log.counters()).toMatchObject({ entries: 3, evicted: { entries: 1, bytes: 0 } });
  });

  it("holds no more than maxBytes: large entries push out old ones", () => {
    const log = new QueryLog({ maxEntries: 1000, maxBytes: 20_000 });
    for (let i = 0; i < 10; i++) log.add(entry(`n${i}`, [`TXT ${"x".repeat(4000)}`]));
    const c = log.counters();
    expect(c.bytes).toBeLessThanOrEqual(20_000);
    expect(c.entries).toBeLessThan(5);
    expect(c.evicted.bytes).toBe(10 - c.entries);
    expect(log.entries().at(-1)?.name).toBe("n9");
  });

  it("can be turned off", () => {
    const log = new QueryLog({ maxEntries: 0 });
    log.add(entry("a"));
    expect(log.entries()).toEqual([]);
    expect(log.counters()).toMatchObject({ entries: 0, tooLarge: 0 });
  });
});

describe("describeAnswers", () => {
  it("cuts a long answer's text and says how long it was", () => {
    const text = describeAnswer({ name: "t.test", type: "TXT", data: ["a".repeat(250), "b".repeat(250)] });
    expect(text).toHaveLength(256 + "… (505 chars)".length);
    expect(text.endsWith("… (505 chars)")).toBe(true);
  });

  it("describes the first 32 answers and counts the rest", () => {
    const many = Array.from({ length: 40 }, (_, i) => ({
      name: "m.test",
      type: "A" as const,
      data: `10.0.0.${i}`,
    }));
    const text = describeAnswers(many);
    expect(text).toHaveLength(33);
    expect([text[0], text[31], text[32]]).toEqual(["A 10.0.0.0", "A 10.0.0.31", "… 8 more"]);
  });
});
