/** Docker -p specs: any text parses or throws SpecError pointing inside it; valid specs mean what they say. */
import { isIP } from "node:net";
import { fc, fuzz } from "@desktopd/fuzz";
import { describe, expect, it } from "vitest";
import { parsePublishSpec, SpecError } from "../../src/index.js";

const port = fc.oneof(
  fc.integer({ min: 0, max: 70_000 }).map(String),
  fc.constantFrom("", "0", "080", "x", "-"),
);
// Wide ranges are valid but cost a mapping per port: kept rare.
const ports = fc.oneof(
  { weight: 6, arbitrary: port },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.integer({ min: 0, max: 65_540 }), fc.integer({ min: -2, max: 8 }))
      .map(([a, d]) => `${a}-${a + d}`),
  },
  { weight: 1, arbitrary: fc.tuple(port, port).map(([a, b]) => `${a}-${b}`) },
);
const zone = fc.option(fc.stringMatching(/^%[a-zA-Z0-9.:-]{0,6}$/), { nil: "" });
const ipv6 = fc.oneof(
  fc.tuple(fc.ipV6(), zone).map(([ip, z]) => ip + z),
  fc.ipV4().map((ip) => `::ffff:${ip}`),
);
const host = fc.oneof(
  fc.ipV4(),
  ipv6.map((ip) => `[${ip}]`),
  fc.ipV6(),
  fc.string({ maxLength: 6 }),
);
/** Docker's grammar with its pieces arbitrary, and plain text. */
const specText = fc.oneof(
  fc
    .tuple(
      fc.option(host, { nil: undefined }),
      fc.option(ports, { nil: undefined }),
      ports,
      fc.constantFrom("", "/tcp", "/udp", "/UDP", "/sctp", "/", "/x"),
    )
    .map(
      ([h, hp, cp, proto]) =>
        `${h === undefined ? "" : `${h}:`}${hp === undefined ? "" : `${hp}:`}${cp}${proto}`,
    ),
  fc.string({ maxLength: 24 }),
  fc.stringMatching(/^[0-9:\-[\]/.%a-f]{0,24}$/),
);
const defaultHostIp = fc.option(fc.oneof(fc.ipV4(), ipv6), { nil: undefined });

describe("parsePublishSpec", () => {
  it("parses any text or throws a SpecError that points inside it", () => {
    fuzz(
      "portfwd-spec",
      "arbitrary text",
      fc.tuple(specText, defaultHostIp),
      ([spec, hostIp]) => {
        let parsed: ReturnType<typeof parsePublishSpec>;
        try {
          parsed = parsePublishSpec(spec, hostIp === undefined ? {} : { defaultHostIp: hostIp });
        } catch (error) {
          if (!SpecError.isInstance(error)) throw error;
          expect(error.column).toBeGreaterThanOrEqual(0);
          expect(error.column + error.length).toBeLessThanOrEqual(spec.length);
          error.caret();
          return;
        }
        expect(parsed.mappings.length).toBeGreaterThan(0);
        for (const m of parsed.mappings) {
          expect(isIP(m.hostIp.split("%")[0]!)).not.toBe(0);
          expect(m.targetPort >= 1 && m.targetPort <= 65535 && m.hostPort >= 0 && m.hostPort <= 65535).toBe(
            true,
          );
          expect(m.protocol).toBe(parsed.protocol);
        }
      },
      1500,
    );
  });

  it("maps what a valid spec says, port by port", () => {
    const range = fc
      .tuple(fc.integer({ min: 1, max: 65535 }), fc.nat(3))
      .filter(([start, n]) => start + n <= 65535);
    const valid = fc.record({
      host: fc.constantFrom(undefined, "127.0.0.1", "0.0.0.0", "10.1.2.3", "[::1]", "[0:0::1]", "[::]"),
      hostPort: fc.oneof(fc.constant(undefined), fc.constant(0), fc.integer({ min: 1, max: 65535 })),
      container: range,
      protocol: fc.constantFrom(undefined, "tcp", "udp", "UDP"),
    });
    fuzz(
      "portfwd-spec",
      "round trip",
      valid,
      ({ host, hostPort, container: [start, n], protocol }) => {
        // A fixed host port maps a range onto a range of the same length.
        const hostPart =
          hostPort === undefined
            ? host
              ? ""
              : undefined
            : hostPort === 0
              ? "0"
              : `${hostPort}-${hostPort + n}`;
        fc.pre(hostPort === undefined || hostPort === 0 || hostPort + n <= 65535);
        const containerPart = n === 0 ? `${start}` : `${start}-${start + n}`;
        const spec =
          [host, hostPart, containerPart].filter((p) => p !== undefined).join(":") +
          (protocol ? `/${protocol}` : "");
        const ip =
          host === undefined ? "127.0.0.1" : host.startsWith("[") ? (host === "[::]" ? "::" : "::1") : host;
        const mappings = Array.from({ length: n + 1 }, (_, i) => ({
          protocol: (protocol ?? "tcp").toLowerCase(),
          hostIp: ip,
          hostPort: hostPort ? hostPort + i : 0,
          targetPort: start + i,
        }));
        expect(parsePublishSpec(spec)).toEqual({
          spec,
          protocol: mappings[0]!.protocol,
          hostIp: ip,
          mappings,
        });
      },
      1000,
    );
  });
});
