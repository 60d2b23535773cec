/**
 * The transparent proxy on real loopback sockets: whatever a guest's first bytes are, it routes
 * the connection (HTTP by Host, TLS by SNI, the rest by address) or closes it, and never throws.
 * With no upstream every route is direct, to the address the guest chose: an echo server here.
 */

import { readFileSync } from "node:fs";
import net from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createHttpProxy,
  createTransparentProxy,
  ProxySettings,
  type TransparentProxy,
} from "../src/index.js";

const FUZZ = Number(process.env.FUZZ_SCALE ?? 1);
const hello = readFileSync(new URL("fixtures/client-hello-curl.bin", import.meta.url));

describe("createTransparentProxy", () => {
  let echo: net.Server;
  let front: net.Server;
  let port: number;
  let transparent: TransparentProxy;

  beforeAll(async () => {
    echo = net.createServer((s) => {
      s.on("error", () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const settings = new ProxySettings();
    transparent = createTransparentProxy({ settings, http: createHttpProxy({ settings }), timeoutMs: 1000 });
    front = net.createServer((s) => transparent.handle(s, { original: { ip: "127.0.0.1", port: echoPort } }));
    await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
    port = (front.address() as net.AddressInfo).port;
  });

  afterAll(() => {
    transparent.close();
    front.close();
    echo.close();
  });

  /** Sends `bytes`, collects what comes back until close or `waitMs`. */
  const exchange = (bytes: Buffer, waitMs = 1500) =>
    new Promise<Buffer>((resolve) => {
      const c = net.connect(port, "127.0.0.1", () => c.write(bytes));
      const got: Buffer[] = [];
      c.on("data", (b) => got.push(b));
      c.on("error", () => {});
      const done = () => resolve(Buffer.concat(got));
      c.on("close", done);
      setTimeout(() => {
        c.destroy();
        done();
      }, waitMs);
    });

  it("tunnels a ClientHello by its SNI and other bytes by address, unchanged", async () => {
    expect(await exchange(hello)).toEqual(hello);
    const other = Buffer.from("\x00\x01binary protocol");
    expect(await exchange(other)).toEqual(other);
    const counters = transparent.counters();
    expect(counters.tlsByName).toBe(1);
    expect(counters.byAddress).toBe(1);
  });

  it("routes or closes whatever the first bytes are, and keeps serving", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 300 }), async (bytes) => {
        await exchange(Buffer.from(bytes), 200);
      }),
      { numRuns: 25 * FUZZ },
    );
    expect(await exchange(hello)).toEqual(hello);
  }, 60_000);
});
