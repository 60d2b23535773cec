/**
 * The explicit proxy against real upstreams from Debian — tinyproxy (plain, and with Basic auth)
 * and microsocks (SOCKS5 with a password) — and real clients (curl), all on loopback: plain
 * requests, CONNECT tunnels, NO_PROXY, a switch of upstream during a download, and bad input.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { missingCommands, skipBecause } from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configFromEnv, createHttpProxy, type HttpProxy, ProxySettings } from "../src/index.js";

const run = promisify(execFile);
const missing = skipBecause(missingCommands("tinyproxy", "microsocks", "curl"));

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, "127.0.0.1");
      c.once("connect", () => {
        c.destroy();
        r(true);
      });
      c.once("error", () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

describe.skipIf(missing)("explicit proxy with real upstreams", () => {
  const dir = mkdtempSync(join(tmpdir(), "dtd-proxy-"));
  const children: ChildProcess[] = [];
  let web: http.Server;
  let webPort: number;
  let tiny: { port: number; log: string };
  let tinyAuth: { port: number; log: string };
  let socksPort: number;
  let proxy: HttpProxy;
  let listener: net.Server;
  let proxyUrl: string;
  const settings = new ProxySettings();

  async function startTinyproxy(name: string, extra = ""): Promise<{ port: number; log: string }> {
    const port = await freePort();
    const log = join(dir, `${name}.log`);
    const conf = join(dir, `${name}.conf`);
    writeFileSync(
      conf,
      `Port ${port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogFile "${log}"\nLogLevel Info\nMaxClients 50\n${extra}`,
    );
    writeFileSync(log, "");
    children.push(spawn("tinyproxy", ["-d", "-c", conf], { stdio: "ignore" }));
    await waitForPort(port);
    return { port, log };
  }

  const curl = async (...args: string[]) =>
    (await run("curl", ["-sS", "--max-time", "20", "-x", proxyUrl, ...args])).stdout;

  beforeAll(async () => {
    web = http.createServer((req, res) => {
      if (req.url === "/slow") {
        // 20 chunks over ~2 s: long enough to switch upstream in the middle.
        let n = 0;
        const timer = setInterval(() => {
          res.write(`chunk ${n}\n`);
          if (++n === 20) {
            clearInterval(timer);
            res.end();
          }
        }, 100);
        return;
      }
      res.end(`hello ${req.url}\n`);
    });
    await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
    webPort = (web.address() as net.AddressInfo).port;
    tiny = await startTinyproxy("tiny");
    tinyAuth = await startTinyproxy("tiny-auth", "BasicAuth alice s3cret\n");
    socksPort = await freePort();
    children.push(
      spawn("microsocks", ["-i", "127.0.0.1", "-p", String(socksPort), "-u", "bob", "-P", "pw"], {
        stdio: "ignore",
      }),
    );
    await waitForPort(socksPort);
    proxy = createHttpProxy({ settings, connectPorts: [webPort], timeoutMs: 3000 });
    listener = net.createServer((s) => proxy.handle(s));
    await new Promise<void>((r) => listener.listen(0, "127.0.0.1", r));
    proxyUrl = `http://127.0.0.1:${(listener.address() as net.AddressInfo).port}`;
  });

  afterAll(() => {
    proxy?.close();
    listener?.close();
    web?.close();
    for (const c of children) c.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("forwards plain requests directly, then through tinyproxy once HTTP_PROXY names it", async () => {
    settings.set(configFromEnv({}));
    expect(await curl(`http://127.0.0.1:${webPort}/direct`)).toBe("hello /direct\n");
    expect(readFileSync(tiny.log, "utf8")).not.toContain("/direct");
    settings.set(configFromEnv({ HTTP_PROXY: `http://127.0.0.1:${tiny.port}` }));
    expect(await curl(`http://127.0.0.1:${webPort}/via-tinyproxy`)).toBe("hello /via-tinyproxy\n");
    expect(readFileSync(tiny.log, "utf8")).toContain("/via-tinyproxy");
  });

  it("tunnels CONNECT through tinyproxy with Basic auth, and through microsocks with a password", async () => {
    settings.set(configFromEnv({ HTTPS_PROXY: `http://alice:s3cret@127.0.0.1:${tinyAuth.port}` }));
    expect(await curl("-p", `http://127.0.0.1:${webPort}/tunnel-auth`)).toBe("hello /tunnel-auth\n");
    expect(readFileSync(tinyAuth.log, "utf8")).toMatch(/CONNECT/);
    settings.set(configFromEnv({ HTTPS_PROXY: `http://alice:wrong@127.0.0.1:${tinyAuth.port}` }));
    const refused = await run("curl", [
      "-sS",
      "-o",
      "/dev/null",
      "-p",
      "-x",
      proxyUrl,
      `http://127.0.0.1:${webPort}/`,
    ]).then(
      () => "",
      (e: { stderr: string }) => e.stderr,
    );
    expect(refused).toMatch(/CONNECT tunnel failed, response 502/);
    settings.set(configFromEnv({ ALL_PROXY: `socks5h://bob:pw@127.0.0.1:${socksPort}` }));
    expect(await curl("-p", `http://127.0.0.1:${webPort}/socks`)).toBe("hello /socks\n");
    expect(await curl(`http://127.0.0.1:${webPort}/socks-plain`)).toBe("hello /socks-plain\n");
  });

  it("goes direct for NO_PROXY destinations", async () => {
    const before = readFileSync(tiny.log, "utf8").length;
    settings.set(
      configFromEnv({ HTTP_PROXY: `http://127.0.0.1:${tiny.port}`, NO_PROXY: "localhost,127.0.0.0/8" }),
    );
    expect(await curl(`http://127.0.0.1:${webPort}/bypass`)).toBe("hello /bypass\n");
    expect(readFileSync(tiny.log, "utf8").slice(before)).not.toContain("/bypass");
  });

  it("finishes a download on the old upstream when the settings change, and sends the next one the new way", async () => {
    settings.set(configFromEnv({ HTTP_PROXY: `http://127.0.0.1:${tiny.port}` }));
    const slow = curl(`http://127.0.0.1:${webPort}/slow`);
    await new Promise((r) => setTimeout(r, 500));
    settings.set(configFromEnv({ HTTP_PROXY: `http://alice:s3cret@127.0.0.1:${tinyAuth.port}` }));
    expect((await slow).split("\n").filter(Boolean)).toHaveLength(20);
    expect(await curl(`http://127.0.0.1:${webPort}/after-switch`)).toBe("hello /after-switch\n");
    expect(readFileSync(tinyAuth.log, "utf8")).toContain("/after-switch");
    expect(readFileSync(tiny.log, "utf8")).toContain("/slow");
  });

  it("answers bad input with the protocol's error and keeps serving", async () => {
    const raw = (text: string) =>
      new Promise<string>((resolve) => {
        const c = net.connect(Number(new URL(proxyUrl).port), "127.0.0.1");
        let out = "";
        c.setEncoding("utf8").on("data", (d: string) => {
          out += d;
        });
        c.on("close", () => resolve(out)).on("error", () => resolve(out));
        // Written, not ended: a client that half-closes gives up on the answer (as curl never does).
        c.write(text);
      });
    expect(await raw("NONSENSE\r\n\r\n")).toMatch(/^HTTP\/1\.1 400 /);
    expect(
      await raw(`GET http://127.0.0.1:${webPort}/ HTTP/1.1\r\nX-Big: ${"a".repeat(70_000)}\r\n\r\n`),
    ).toMatch(/^HTTP\/1\.1 431 /);
    expect(await raw("GET /relative HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).toMatch(
      /^HTTP\/1\.1 400 /,
    );
    expect(await raw("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n")).toMatch(
      /^HTTP\/1\.1 403 [\s\S]*not allowed/,
    );
    const dead = await freePort();
    settings.set(configFromEnv({ HTTP_PROXY: `http://127.0.0.1:${dead}` }));
    const unreachable = await raw(
      `GET http://127.0.0.1:${webPort}/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expect(unreachable).toMatch(/^HTTP\/1\.1 502 /);
    expect(unreachable).toContain(`127.0.0.1:${dead}`);
    settings.set(configFromEnv({}));
    expect(await curl(`http://127.0.0.1:${webPort}/still-serving`)).toBe("hello /still-serving\n");
    expect(proxy.counters().errors).toMatchObject({ 400: 2, 431: 1, 403: 1, 502: 2 });
  });

  it("answers 504 naming an upstream that accepts and never answers, plain and CONNECT", async () => {
    // A proxy that takes the connection and says nothing: the 3 s bound of this test's proxy.
    const held: net.Socket[] = [];
    const silent = net.createServer((s) => held.push(s.on("error", () => {})));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as net.AddressInfo).port;
    settings.set(
      configFromEnv({ HTTP_PROXY: `http://127.0.0.1:${port}`, HTTPS_PROXY: `http://127.0.0.1:${port}` }),
    );
    try {
      const plain = await run("curl", [
        "-s",
        "--max-time",
        "20",
        "-x",
        proxyUrl,
        "-w",
        "\n%{http_code}",
        `http://127.0.0.1:${webPort}/`,
      ]);
      expect(plain.stdout).toMatch(
        new RegExp(`upstream http://127\\.0\\.0\\.1:${port}: no answer within 3000 ms\\n\\n504$`),
      );
      const tunnel = await run("curl", [
        "-sS",
        "--max-time",
        "20",
        "-p",
        "-x",
        proxyUrl,
        `http://127.0.0.1:${webPort}/`,
      ]).catch((e: { stderr: string }) => e);
      expect((tunnel as { stderr: string }).stderr).toMatch(/CONNECT tunnel failed, response 504/);
      expect(proxy.counters().errors[504]).toBe(2);
    } finally {
      settings.set(configFromEnv({}));
      for (const s of held) s.destroy();
      silent.close();
    }
  });
});
