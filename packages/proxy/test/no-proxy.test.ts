import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ProxyConfigError, parseNoProxy } from "../src/index.js";

const FUZZ = Number(process.env.FUZZ_SCALE ?? 1);

describe("parseNoProxy", () => {
  const rules = parseNoProxy(
    "localhost, .corp.example,*.internal  10.0.0.0/8,192.168.65.254 [fd00::1]:8080,db.test:5432",
  );

  it("matches names and their subdomains, case and trailing dot ignored", () => {
    expect(rules.matches("localhost", 80)).toBe(true);
    expect(rules.matches("LOCALHOST.", 80)).toBe(true);
    expect(rules.matches("corp.example", 443)).toBe(true);
    expect(rules.matches("git.corp.example", 443)).toBe(true);
    expect(rules.matches("notcorp.example", 443)).toBe(false);
    expect(rules.matches("a.b.internal", 80)).toBe(true);
    expect(rules.matches("example.com", 80)).toBe(false);
  });

  it("matches addresses and CIDRs, IPv4-mapped IPv6 as IPv4, and ports where given", () => {
    expect(rules.matches("10.1.2.3", 80)).toBe(true);
    expect(rules.matches("11.0.0.1", 80)).toBe(false);
    expect(rules.matches("192.168.65.254", 3128)).toBe(true);
    expect(rules.matches("::ffff:10.9.9.9", 80)).toBe(true);
    // The same address in hex and in full: still IPv4 (a way around NO_PROXY, or into it, otherwise).
    expect(rules.matches("[::ffff:a09:909]", 80)).toBe(true);
    expect(rules.matches("0:0:0:0:0:ffff:0a09:0909", 80)).toBe(true);
    expect(rules.matches("::ffff:b00:1", 80)).toBe(false);
    expect(rules.matches("fd00::1", 8080)).toBe(true);
    expect(rules.matches("[fd00::1]", 8080)).toBe(true);
    expect(rules.matches("fd00::1", 80)).toBe(false);
    expect(rules.matches("db.test", 5432)).toBe(true);
    expect(rules.matches("db.test", 5433)).toBe(false);
    // A name is not an address: no DNS lookup happens here.
    expect(rules.matches("ten.example", 80)).toBe(false);
  });

  it("takes * for everything and an empty list for nothing", () => {
    expect(parseNoProxy("*").matches("anything.example", 1)).toBe(true);
    expect(parseNoProxy("").matches("localhost", 80)).toBe(false);
    expect(parseNoProxy(["a.test", "b.test"]).matches("x.b.test", 1)).toBe(true);
  });

  it("refuses entries that are none of the forms, naming the key", () => {
    for (const bad of ["bad name!", "10.0.0.0/33", "host:0", "host:70000", "300.1.1.1/8"]) {
      let error: unknown;
      try {
        parseNoProxy(bad, "noProxy");
      } catch (e) {
        error = e;
      }
      expect(ProxyConfigError.isInstance(error), bad).toBe(true);
      expect((error as Error).message).toMatch(/^noProxy: /);
    }
  });

  it("matches a suffix rule exactly when the name is it or ends with .it", () => {
    const label = fc.stringMatching(/^[a-z0-9]{1,8}$/);
    fc.assert(
      fc.property(
        fc.array(label, { minLength: 1, maxLength: 3 }),
        fc.array(label, { minLength: 1, maxLength: 4 }),
        (suffix, name) => {
          const rule = suffix.join(".");
          const host = name.join(".");
          const expected = host === rule || host.endsWith(`.${rule}`);
          expect(parseNoProxy(`.${rule}`).matches(host, 443)).toBe(expected);
        },
      ),
      { numRuns: 200 * FUZZ },
    );
  });

  it("answers a host asked again as the first time, past the memory of recent hosts", () => {
    const rules = parseNoProxy("192.0.2.0/25,fd00::/120,corp.example");
    // 1500 hosts, each asked three times, in two rounds: the remembered parses are cleared on the
    // way. Neighbours differ in their last characters only, and in the answer.
    const hosts = Array.from({ length: 1500 }, (_, i) => {
      if (i % 3 === 0) return { host: `192.0.2.${i % 256}`, inside: i % 256 < 128 };
      if (i % 3 === 1) return { host: `[fd00::${(i % 512).toString(16)}]`, inside: i % 512 < 256 };
      return { host: `h${i}.${i % 2 ? "corp" : "other"}.example`, inside: i % 2 === 1 };
    });
    for (let round = 0; round < 2; round++) {
      for (const { host, inside } of hosts) {
        for (let ask = 0; ask < 3; ask++) expect(rules.matches(host, 80), host).toBe(inside);
      }
    }
    // The same text as an IPv4-mapped address is the IPv4 address, asked before or not.
    expect(rules.matches("::ffff:192.0.2.9", 80)).toBe(true);
    expect(rules.matches("::ffff:192.0.2.200", 80)).toBe(false);
    expect(rules.matches("::ffff:192.0.2.9", 80)).toBe(true);
  });

  it("matches an IPv4 CIDR exactly when the address is inside it", () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 32 }), (net, ip, bits) => {
        const toInt = (t: string) => t.split(".").reduce((a, b) => a * 256 + Number(b), 0);
        const mask = bits === 0 ? 0 : 2 ** 32 - 2 ** (32 - bits);
        const base = (toInt(net) & mask) >>> 0;
        const baseText = [base >>> 24, (base >>> 16) & 255, (base >>> 8) & 255, base & 255].join(".");
        const inside = (toInt(ip) & mask) >>> 0 === base;
        expect(parseNoProxy(`${baseText}/${bits}`).matches(ip, 80)).toBe(inside);
      }),
      { numRuns: 300 * FUZZ },
    );
  });
});
