/**
 * The command-line spellings of records, forwarding rules and servers: any text parses or throws
 * DnsConfigError, and what parses can be served (fixed records, the registry) as written.
 */
import { fc, fuzz } from "@desktopd/fuzz";
import * as packet from "dns-packet";
import { describe, expect, it } from "vitest";
import {
  createFixedLayer,
  createRegistry,
  DnsConfigError,
  parseForwardRule,
  parseRecord,
  parseServer,
} from "../../src/index.js";

function configError(fn: () => unknown): unknown {
  try {
    return fn();
  } catch (error) {
    if (!DnsConfigError.isInstance(error)) throw error;
    return undefined;
  }
}

/** Compared as the WHATWG URL parser spells addresses: one spelling per address. */
const spelling = (ip: string) => new URL(`http://${ip.includes(":") ? `[${ip}]` : ip}/`).hostname;
const sameAddress = (a: string, b: string) => spelling(a) === spelling(b);

const label = fc.oneof(
  fc.stringMatching(/^[a-z0-9_]([a-z0-9_-]{0,8}[a-z0-9_])?$/),
  fc.string({ maxLength: 4 }),
);
const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join("."));
const zone = fc.option(fc.stringMatching(/^%[a-zA-Z0-9.:-]{0,6}$/), { nil: "" });
const address = fc.oneof(
  fc.ipV4(),
  fc.tuple(fc.ipV6(), zone).map(([ip, z]) => ip + z),
  fc.ipV4().map((ip) => `::ffff:${ip}`),
  fc.string({ maxLength: 12 }),
);
const port = fc.oneof(fc.integer({ min: 0, max: 70000 }).map(String), fc.string({ maxLength: 3 }));
const data = fc.oneof(
  address,
  domain,
  fc.tuple(port, domain).map(([p, d]) => `${p} ${d}`),
  fc.tuple(port, port, port, domain).map((f) => f.join(" ")),
  fc.string({ maxLength: 20 }),
);
const type = fc.constantFrom("", "/A", "/AAAA", "/CNAME", "/PTR", "/TXT", "/MX", "/SRV", "/mx", "/NS", "/");
const recordText = fc.oneof(
  fc.tuple(fc.constantFrom("", "*."), domain, type, data).map(([w, n, t, d]) => `${w}${n}${t}=${d}`),
  fc.string({ maxLength: 30 }),
);

describe("parseRecord", () => {
  it("parses any text or throws DnsConfigError; a record it accepts is served as written", () => {
    fuzz(
      "dns-parse",
      "records",
      recordText,
      (text) => {
        const r = configError(() => parseRecord(text)) as ReturnType<typeof parseRecord> | undefined;
        if (r === undefined) return;
        const layer = createFixedLayer({ records: [r] });
        const name = r.name.replace(/^\*\./, "x.");
        const answer = (layer.resolve({ name, type: r.type }) as { answers: packet.Answer[] }).answers[0]!;
        const back = packet.decode(packet.encode({ type: "response", id: 1, answers: [answer] }))
          .answers![0]!;
        if (r.type === "A" || r.type === "AAAA") {
          // A zone index (%eth0) names a link of this host: no DNS answer can carry it.
          expect(r.data).not.toContain("%");
          // The address the guest gets is the one configured, however either is spelled.
          expect(sameAddress((back as packet.StringAnswer).data, r.data)).toBe(true);
          // And the registry takes the same name and address (the control API registers that way).
          if (!r.name.startsWith("*.")) createRegistry().register(r.name, r.data);
        }
      },
      2000,
    );
  });
});

describe("parseServer and parseForwardRule", () => {
  const server = fc.oneof(
    fc
      .tuple(address, fc.option(port, { nil: undefined }))
      .map(([a, p]) => (p === undefined ? a : `${a}:${p}`)),
    fc.tuple(address, port).map(([a, p]) => `[${a}]:${p}`),
    fc.string({ maxLength: 20 }),
  );

  it("parse any text or throw DnsConfigError", () => {
    const rule = fc.oneof(
      fc
        .tuple(domain, fc.array(server, { minLength: 1, maxLength: 3 }))
        .map(([d, s]) => `${d}=${s.join(",")}`),
      fc.string({ maxLength: 30 }),
    );
    fuzz(
      "dns-parse",
      "servers and rules",
      fc.tuple(server, rule),
      ([s, r]) => {
        const up = configError(() => parseServer(s)) as ReturnType<typeof parseServer> | undefined;
        if (up) expect(Number.isInteger(up.port) && up.port >= 1 && up.port <= 65535).toBe(true);
        configError(() => parseForwardRule(r));
      },
      2000,
    );
  });
});
