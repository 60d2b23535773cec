/**
 * The control API fed arbitrary JSON and arbitrary bytes on every route that takes a body or a
 * path argument: each request gets a JSON answer, success or a 4xx naming the problem, never a
 * 5xx, and the server keeps serving. Real forwarder (loopback), DNS registry and egress policy.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDns, type Dns } from "@desktopd/dns";
import { bytes, fc, fuzzAsync } from "@desktopd/fuzz";
import { createForwarder, createSocketDialer, type Forwarder, parsePublishSpec } from "@desktopd/portfwd";
import { createStack, type Stack } from "@desktopd/stack";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventBus } from "../../src/control/events.js";
import { type ControlServer, startControlServer } from "../../src/control/server.js";

interface Answer {
  status: number;
  type: string | undefined;
  body: string;
}

function send(path: string, method: string, url: string, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { "content-length": body.length };
    const req = request({ socketPath: path, method, path: url, headers, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode!,
          type: res.headers["content-type"],
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${url}: no answer in 5 s`)));
    req.on("error", reject);
    req.end(body);
  });
}

const ipLike = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  // A zone index: isIP takes it, DNS data cannot carry it.
  fc.tuple(fc.ipV6(), fc.constantFrom("%eth0", "%1", "%lo")).map(([ip, zone]) => ip + zone),
  fc.constantFrom("192.168.65.9", "fd00::9", "::ffff:1.2.3.4", "1.2.3", "", "x"),
);
const anyValue = fc.oneof(fc.string({ maxLength: 12 }), ipLike, fc.jsonValue({ maxDepth: 1 }));
/** Each route's body, every field of any type (or missing), and anything else. */
const optional = { requiredKeys: [] as never[] };
const publishBody = fc.record(
  {
    spec: fc.oneof(
      fc.constantFrom("0:9", "127.0.0.1::9/udp", "[::1]:0:9", "1.2.3.4:0:9", "[fe80::1%lo]:0:9", " "),
      anyValue,
    ),
  },
  optional,
);
const namesBody = fc.record(
  {
    name: fc.oneof(fc.constantFrom("web", "web.test", "*.x", "a/b", ".", ""), anyValue),
    address: anyValue,
    ttl: fc.oneof(fc.integer({ min: -2, max: 40_000_000 }), fc.double(), anyValue),
  },
  { requiredKeys: ["name", "address"] },
);
const egressBody = fc.record(
  {
    rule: fc.oneof(
      fc.constantFrom(
        "deny 10.0.0.0/8",
        "allow tcp example.com:443",
        "deny udp *:53",
        "allow",
        "deny 1.2.3.4/33",
      ),
      fc.record({ action: anyValue, to: anyValue, protocol: anyValue, ports: anyValue }, optional),
      anyValue,
    ),
    position: fc.oneof(fc.nat(5), fc.integer({ min: -3, max: 3 }), fc.double(), anyValue),
  },
  optional,
);
const jsonBody = fc.oneof(publishBody, namesBody, egressBody, fc.jsonValue({ maxDepth: 2 }));
/** A body: JSON, bytes, none, or one over the 16 KiB limit (by its size: it is kept in the corpus). */
type Body = { json: unknown } | { bytes: Buffer } | { none: true } | { oversize: number };
const body: fc.Arbitrary<Body> = fc.oneof(
  { weight: 6, arbitrary: jsonBody.map((json) => ({ json })) },
  { weight: 2, arbitrary: bytes(64).map((b) => ({ bytes: b })) },
  { weight: 1, arbitrary: fc.constant({ none: true as const }) },
  { weight: 1, arbitrary: fc.integer({ min: -2, max: 3 }).map((n) => ({ oversize: 16 * 1024 + n })) },
);
function bodyBytes(b: Body): Buffer | undefined {
  if ("json" in b) return Buffer.from(JSON.stringify(b.json) ?? "null");
  if ("bytes" in b) return b.bytes;
  if ("oversize" in b) return Buffer.alloc(b.oversize, "x");
  return undefined;
}
/** A path segment: percent-encoded text, or raw (broken escapes included). */
const segment = fc.oneof(
  fc
    .oneof(fc.string({ maxLength: 12 }), ipLike, fc.constantFrom("tcp/127.0.0.1:9", "0:9", "1", "99"))
    .map(encodeURIComponent),
  fc.stringMatching(/^[A-Za-z0-9%._~:-]{0,12}$/),
);
const query = fc.oneof(
  fc.constant(""),
  fc.tuple(fc.constantFrom("close", "address", "limit"), segment).map(([k, v]) => `?${k}=${v}`),
);
const call = fc.oneof(
  fc.record({
    method: fc.constantFrom("POST", "PUT", "GET"),
    url: fc.constantFrom("/v1/publish", "/v1/dns/names", "/v1/egress"),
    body,
  }),
  fc.record({
    method: fc.constantFrom("DELETE", "POST", "GET"),
    url: fc
      .tuple(
        fc.constantFrom("/v1/publish/", "/v1/dns/names/", "/v1/egress/", "/v1/dns/log", "/v1/", "/x/"),
        segment,
        query,
      )
      .map(([p, s, q]) => `${p}${s}${q}`),
    body,
  }),
);

describe("control API", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-control-fuzz-"));
  const path = join(dir, "control.sock");
  let forwarder: Forwarder;
  let dns: Dns;
  let stack: Stack;
  let control: ControlServer;

  beforeAll(async () => {
    forwarder = createForwarder({ dialer: createSocketDialer(), target: "127.0.0.1" });
    dns = createDns({ registry: { subnets: ["192.168.65.0/24"] }, host: false });
    stack = createStack({ egress: { rules: ["deny 10.0.0.0/8"] } });
    const events = new EventBus();
    events.relay(forwarder);
    control = await startControlServer(path, {
      forwarder,
      dns,
      egress: stack.egress,
      events,
      status: () => ({ ready: true }),
    });
  });

  afterAll(async () => {
    await control?.close();
    await forwarder?.close();
    dns?.close();
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers arbitrary bodies and path arguments with JSON, never a 5xx, and keeps serving", async () => {
    await fuzzAsync(
      "desktopd-control",
      "requests",
      call,
      async ({ method, url, body: b }) => {
        const body = bodyBytes(b);
        // Only narrow specs are published for real: a range would bind thousands of ports.
        const spec = "json" in b ? (b.json as { spec?: unknown } | null)?.spec : undefined;
        if (typeof spec === "string") {
          try {
            const p = parsePublishSpec(spec);
            fc.pre(p.mappings.length <= 2 && p.mappings.every((m) => m.hostPort === 0));
          } catch {}
        }
        const a = await send(path, method, url, body);
        expect(a.status, a.body).toBeLessThan(500);
        expect(a.type).toBe("application/json");
        const answer = JSON.parse(a.body) as { error?: unknown; code?: unknown };
        if (a.status >= 400) {
          expect(typeof answer.error).toBe("string");
          expect(String(answer.code)).toMatch(/^ERR_DESKTOPD/);
        }
        for (const f of forwarder.list()) await forwarder.remove(f.id, { closeConnections: true });
      },
      300,
    );
    expect((await send(path, "GET", "/v1/status")).status).toBe(200);
  });

  it("survives arbitrary bytes on the socket, HTTP or not", async () => {
    const garbage = fc.oneof(
      bytes(200),
      fc
        .tuple(
          fc.constantFrom(
            "POST /v1/publish HTTP/1.1\r\n",
            "DELETE /v1/dns/names/x HTTP/1.1\r\n",
            "GET / HTTP/1.0\r\n",
          ),
          bytes(100),
        )
        .map(([line, rest]) => Buffer.concat([Buffer.from(line), rest])),
    );
    await fuzzAsync(
      "desktopd-control",
      "raw bytes",
      garbage,
      async (b) => {
        const answer = await new Promise<string>((resolve, reject) => {
          const s = connect(path);
          let got = "";
          s.setTimeout(3000, () => s.end());
          s.on("data", (d: Buffer) => {
            got += d.toString("latin1");
          });
          s.on("close", () => resolve(got));
          s.on("error", reject);
          s.end(b);
        });
        // Whatever came back is HTTP, and no 5xx.
        if (answer) expect(answer).toMatch(/^HTTP\/1\.[01] [1-4]\d\d /);
      },
      200,
    );
    expect((await send(path, "GET", "/v1/status")).status).toBe(200);
  });
});
