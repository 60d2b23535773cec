/**
 * `run`/`demo` options and the config file: any JSON-ish input gives a config or an
 * InvalidOptionError (never another exception), and an accepted config holds what it promises.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseRecord } from "@desktopd/dns";
import { fc, fuzz } from "@desktopd/fuzz";
import { parsePublishSpec } from "@desktopd/portfwd";
import { afterAll, describe, expect, it } from "vitest";
import { MAX_MTU, MIN_MTU, parseDemoOptions, parseRunOptions, RUN_OPTION_KEYS } from "../../src/config.js";
import { mergeOptions, readConfigFile } from "../../src/config-file.js";
import { InvalidOptionError } from "../../src/errors.js";

const ipv6 = fc.tuple(fc.ipV6(), fc.constantFrom("", "%eth0", "%1")).map(([ip, zone]) => ip + zone);
const ip = fc.oneof(
  fc.ipV4(),
  ipv6,
  fc.ipV4().map((v4) => `::ffff:${v4}`),
);
/** Strings an option may plausibly hold, right or wrong, and any string. */
const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom(
    "dtd-a-1",
    "eth0",
    "192.168.65.0/24",
    "10.0.0.0/8",
    "1500",
    "/tmp/vm.sock",
    "tcp:127.0.0.1:5555",
  ),
  fc.constantFrom(
    "info",
    "silent",
    "os",
    "nameservers",
    "8080:80",
    "53:53/udp",
    "0:80",
    "1-3",
    "db.test=10.0.0.7",
  ),
  ip,
  fc.tuple(ip, fc.integer({ min: 0, max: 70000 })).map(([a, p]) => `[${a}]:${p}:80`),
  fc.tuple(fc.constantFrom("a.test", "*.x.test", "b.test/AAAA", "c/MX"), ip).map(([n, a]) => `${n}=${a}`),
  fc.tuple(fc.constantFrom("corp.example", ""), ip).map(([d, a]) => `${d}=${a}`),
);
const value = fc.oneof(
  { weight: 4, arbitrary: text },
  { weight: 2, arbitrary: fc.array(text, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.oneof(fc.boolean(), fc.integer(), fc.double(), fc.constant(null)) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
);
const key = fc.oneof(
  { weight: 9, arbitrary: fc.constantFrom(...RUN_OPTION_KEYS) },
  fc.string({ maxLength: 8 }),
);
const options = fc.dictionary(key, value, { maxKeys: 6 });

/** Runs `parse`; an InvalidOptionError is an answer, any other exception a bug. */
function parsed<T>(parse: () => T): T | undefined {
  try {
    return parse();
  } catch (error) {
    if (!InvalidOptionError.isInstance(error)) throw error;
    expect(error.message).toMatch(/^(--[a-z0-9-]+|options): /);
    return undefined;
  }
}

/** What code after validation relies on. */
function expectSound(c: NonNullable<ReturnType<typeof parseRunOptions>>): void {
  expect(Number.isInteger(c.mtu) && c.mtu >= MIN_MTU && c.mtu <= MAX_MTU).toBe(true);
  for (const spec of c.publish ?? []) {
    parsePublishSpec(spec, c.publishHostIp ? { defaultHostIp: c.publishHostIp } : {});
  }
  for (const r of c.dnsRecord) parseRecord(r);
  for (const list of [c.qemuSocket, c.qemuConnect, c.vfkitSocket, c.dnsRecord, c.dnsForward]) {
    expect(list.every((s) => typeof s === "string")).toBe(true);
  }
}

describe("options", () => {
  it("parseRunOptions and parseDemoOptions take any object", () => {
    fuzz(
      "desktopd-config",
      "options",
      fc.oneof({ weight: 9, arbitrary: options }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }),
      (input) => {
        const run = parsed(() => parseRunOptions(input));
        if (run) expectSound(run);
        parsed(() => parseDemoOptions(input));
      },
      800,
    );
  });
});

describe("config file", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-config-fuzz-"));
  const file = join(dir, "config.json");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("reads any file content into a config or an InvalidOptionError, the command line winning", () => {
    const content = fc.oneof(
      options.map((o) => JSON.stringify(o)),
      fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
      fc.string({ maxLength: 40 }),
      fc.constantFrom('{"__proto__": {"mtu": 70}}', '{"constructor": 1}', '{"mtu": 1e999}', "\ufeff{}"),
    );
    fuzz(
      "desktopd-config",
      "config file",
      fc.tuple(content, fc.dictionary(fc.constantFrom(...RUN_OPTION_KEYS), value, { maxKeys: 3 })),
      ([text, cli]) => {
        writeFileSync(file, text);
        const fromFile = parsed(() => readConfigFile(file, RUN_OPTION_KEYS));
        if (fromFile === undefined) return;
        const config = parsed(() => parseRunOptions(mergeOptions(fromFile, cli)));
        if (config) expectSound(config);
      },
      300,
    );
  });
});
