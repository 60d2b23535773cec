import { describe, expect, it } from "vitest";
import type { RunResult } from "../src/proc.js";
import { judgeBatch } from "../src/soak/batch.js";
import { dnsQueries, dnsVerdict, parseDigBatch } from "../src/soak/dns-check.js";
import { seededSha } from "../src/soak/seeded.js";
import { checkProblem, Tally } from "../src/soak/tally.js";
import { judgeRound } from "../src/soak/vm-traffic.js";

const exit0: RunResult = { code: 0, signal: null, stdout: "", stderr: "", timedOut: false };

describe("soak traffic checks", () => {
  it("reads a dig batch: addresses, NXDOMAIN, and queries that got no answer", () => {
    const header = (status: string, name: string, answer = "") =>
      `;; ->>HEADER<<- opcode: QUERY, status: ${status}, id: 1\n;; QUESTION SECTION:\n;${name}.\t\tIN\tA\n\n${answer}`;
    const out = [
      header(
        "NOERROR",
        "a.test",
        ";; ANSWER SECTION:\na.test.\t0\tIN\tA\t10.0.0.2\na.test.\t0\tIN\tA\t10.0.0.1\n\n",
      ),
      header("NXDOMAIN", "nx.test"),
      ";; communications error to 192.168.65.1#53: timed out\n",
    ].join("");
    const got = parseDigBatch(out);
    expect(got.get("a.test")).toBe("10.0.0.1,10.0.0.2");
    expect(dnsVerdict("NXDOMAIN", got.get("nx.test"))).toBe("ok");
    expect(dnsVerdict("10.0.0.1", got.get("a.test"))).toBe("wrong");
    expect(dnsVerdict("10.0.0.1", got.get("lost.test"))).toBe("failed");
  });

  it("counts a batch line by line: missing lines failed, unexpected ones wrong", () => {
    const tally = new Tally();
    judgeBatch(tally, "churn", exit0, ["a", "b", "b", "c"], ["a", "b", "x", ""]);
    expect(tally.checks.churn).toMatchObject({ attempts: 5, wrong: 1, failed: 2 });
  });

  it("fails a check on any wrong answer, on failures above 1 %, and when it never ran", () => {
    const tally = new Tally();
    tally.ok("a", 199);
    tally.fail("a", "failed", "timed out", 2);
    expect(checkProblem(tally.checks.a!)).toBeUndefined();
    tally.fail("a", "failed", "timed out");
    expect(checkProblem(tally.checks.a!)).toMatch(/3 of 202 failed/);
    tally.ok("b", 1000);
    tally.fail("b", "wrong", "checksum");
    expect(checkProblem(tally.checks.b!)).toMatch(/wrong/);
    expect(checkProblem({ attempts: 0, wrong: 0, failed: 0, examples: [], bytes: 0, notes: {} })).toBe(
      "never ran",
    );
  });

  it("judges a VM round from the script's lines", () => {
    const token = "v1x0";
    const queries = dnsQueries(token, "192.168.65.254");
    const size = 1024;
    const lines = [
      `@DL ${seededSha(size, 3)} ${size}`,
      "@UL abc 10 abc 10",
      "@CHURN 19 0 1 wget: can't connect",
      ...queries.map((q) => `@DNS ${q.name} ${q.want === "NXDOMAIN" ? "NXDOMAIN" : q.want}`),
      `@UDP ${Array.from({ length: 9 }, (_, i) => `echo:${token}-${i + 1}`).join(" ")} junk`,
      "@DONE",
    ];
    const tally = new Tally();
    judgeRound(lines.join("\n"), { token, size, seed: 3, queries }, tally);
    expect(tally.checks["vm-download"]).toMatchObject({ attempts: 1, wrong: 0, failed: 0 });
    expect(tally.checks["vm-upload"]).toMatchObject({ attempts: 1, wrong: 0, failed: 0 });
    expect(tally.checks["vm-churn"]).toMatchObject({ attempts: 20, failed: 1 });
    expect(tally.checks["vm-dns"]).toMatchObject({ attempts: 5, wrong: 0, failed: 0 });
    expect(tally.checks["vm-udp"]).toMatchObject({ attempts: 11, wrong: 1, failed: 1 });
  });

  it("fails every kind of a VM round that printed nothing", () => {
    const tally = new Tally();
    judgeRound("", { token: "t", size: 1, seed: 0, queries: dnsQueries("t", "h") }, tally);
    for (const check of ["vm-download", "vm-upload", "vm-churn", "vm-dns", "vm-udp"])
      expect(tally.checks[check]!.failed).toBeGreaterThan(0);
  });
});
