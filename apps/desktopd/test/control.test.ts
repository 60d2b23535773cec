/**
 * The control API over a real unix socket, driving a real forwarder (plain host sockets as its
 * dialer): publish, list with stats, unpublish, and the errors a client gets.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDns, type Dns } from "@desktopd/dns";
import { createForwarder, createSocketDialer, type Forwarder, type ForwardInfo } from "@desktopd/portfwd";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventsCommand } from "../src/commands/control.js";
import { controlRequest, watchEvents } from "../src/control/client.js";
import { EventBus } from "../src/control/events.js";
import { type ControlServer, startControlServer } from "../src/control/server.js";
import { ControlError } from "../src/errors.js";
import { cli } from "./support/cli.js";

describe("control API", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-control-"));
  const path = join(dir, "control.sock");
  let echo: Server;
  let echoPort: number;
  let forwarder: Forwarder;
  let control: ControlServer;
  let dns: Dns;
  const events = new EventBus();

  beforeAll(async () => {
    echo = createServer((s) => {
      // Connections closed with close=1 reach it as resets.
      s.on("error", () => {});
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, "127.0.0.1", r));
    echoPort = (echo.address() as { port: number }).port;
    forwarder = createForwarder({ dialer: createSocketDialer(), target: "127.0.0.1" });
    dns = createDns({ registry: { subnets: ["192.168.65.0/24"] }, host: false });
    events.relay(forwarder);
    control = await startControlServer(path, {
      forwarder,
      dns,
      events,
      status: () => ({ ready: { subnet: "x" } }),
    });
  });

  afterAll(async () => {
    await control?.close();
    await forwarder?.close();
    dns?.close();
    echo?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("is a socket only its owner can use", () => {
    expect(statSync(path).isSocket()).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it("publishes, lists with live stats, and unpublishes by id", async () => {
    const added = (await controlRequest(path, "POST", "/v1/publish", {
      spec: `0:${echoPort}`,
    })) as ForwardInfo[];
    expect(added).toHaveLength(1);
    const id = added[0]!.id;
    expect(id).toMatch(/^tcp\/127\.0\.0\.1:\d+$/);
    // A connection through the forward shows in the stats.
    const { connect } = await import("node:net");
    const c = connect(added[0]!.hostPort, "127.0.0.1");
    c.end("ping");
    const echoed = await new Promise<string>((resolve) => {
      let got = "";
      c.on("data", (d: Buffer) => {
        got += d;
      });
      c.on("close", () => resolve(got));
    });
    expect(echoed).toBe("ping");
    const listed = (await controlRequest(path, "GET", "/v1/publish")) as ForwardInfo[];
    expect(listed.find((f) => f.id === id)?.stats).toMatchObject({ accepted: 1, bytesIn: 4, bytesOut: 4 });
    const removed = (await controlRequest(
      path,
      "DELETE",
      `/v1/publish/${encodeURIComponent(id)}`,
    )) as ForwardInfo[];
    expect(removed.map((f) => f.id)).toEqual([id]);
    expect(await controlRequest(path, "GET", "/v1/publish")).toEqual([]);
  });

  it("unpublishes with close=1 (desktopd publish rm --close-connections): open connections are reset", async () => {
    const added = (await controlRequest(path, "POST", "/v1/publish", {
      spec: `0:${echoPort}`,
    })) as ForwardInfo[];
    const { connect } = await import("node:net");
    const open = async () => {
      const c = connect(added[0]!.hostPort, "127.0.0.1");
      c.write("hi");
      await new Promise((resolve) => c.once("data", resolve));
      const ended = new Promise<string>((resolve) => {
        c.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
        c.on("close", () => resolve("closed"));
      });
      return { c, ended };
    };
    const kept = await open();
    const rm = await cli("publish", "rm", added[0]!.id, "--control", path);
    expect(rm.code, rm.err).toBe(0);
    // Without close=1 it lives on.
    kept.c.write("still");
    await new Promise((resolve) => kept.c.once("data", resolve));
    kept.c.destroy();

    const again = (await controlRequest(path, "POST", "/v1/publish", {
      spec: `${added[0]!.hostPort}:${echoPort}`,
    })) as ForwardInfo[];
    const doomed = await open();
    const closing = await cli("publish", "rm", again[0]!.id, "--close-connections", "--control", path);
    expect(closing.code, closing.err).toBe(0);
    expect(await doomed.ended).toBe("ECONNRESET");
  });

  it("answers errors with a status and the library's message", async () => {
    const bad = await controlRequest(path, "POST", "/v1/publish", { spec: "80:80:80:80" }).catch((e) => e);
    expect(ControlError.isInstance(bad)).toBe(true);
    const missing = await controlRequest(path, "DELETE", "/v1/publish/tcp%2F127.0.0.1%3A1").catch((e) => e);
    expect((missing as Error).message).toMatch(/tcp\/127\.0\.0\.1:1/);
    const noSpec = await controlRequest(path, "POST", "/v1/publish", { nope: 1 }).catch((e) => e);
    expect((noSpec as Error).message).toContain('expected {"spec"');
    const wrong = await controlRequest(path, "PUT", "/v1/status").catch((e) => e);
    expect((wrong as Error).message).toContain("PUT not allowed");
    expect(((await controlRequest(path, "GET", "/v2/x").catch((e) => e)) as Error).message).toContain(
      "no such resource",
    );
  });

  it("answers malformed JSON with 400, oversized bodies with 413, and is not held up by a stuck client", async () => {
    const raw = (request: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(path);
        let answer = "";
        socket.setEncoding("utf8").on("data", (d: string) => {
          answer += d;
        });
        socket
          .on("end", () => resolve(answer))
          .on("close", () => resolve(answer))
          .on("error", reject);
        socket.end(request);
      });
    const post = (body: string) =>
      `POST /v1/publish HTTP/1.1\r\nHost: desktopd\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
    expect(await raw(post('{"spec": '))).toMatch(/^HTTP\/1\.1 400 .*the request body is not JSON/s);
    expect(await raw(post(`{"spec": "${"x".repeat(20_000)}"}`))).toMatch(/^HTTP\/1\.1 413 /);
    // A client that sends half a request and stops: others are answered meanwhile.
    const stuck = connect(path);
    stuck.on("error", () => {});
    stuck.write("POST /v1/publish HTTP/1.1\r\nHost: desktopd\r\nContent-Length: 100\r\n\r\n{");
    expect(await controlRequest(path, "GET", "/v1/status")).toEqual({ ready: { subnet: "x" } });
    stuck.destroy();
  });

  it("drives `desktopd publish` and `desktopd status` from the command line", async () => {
    const add = await cli("publish", "add", `127.0.0.1:0:${echoPort}`, "--control", path);
    expect(add.code, add.err).toBe(0);
    expect(add.out).toMatch(/^tcp\/127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+ {2}open 0/);
    const id = add.out.split(" ")[0]!;
    const ls = await cli("publish", "ls", "--control", path, "--json");
    expect((JSON.parse(ls.out) as ForwardInfo[]).map((f) => f.id)).toEqual([id]);
    expect((await cli("publish", "rm", id, "--control", path)).code).toBe(0);
    const status = await cli("status", "--control", path, "--json");
    expect(JSON.parse(status.out)).toEqual({ ready: { subnet: "x" } });
  });

  it("registers, lists and removes DNS names, and refuses bad ones with 400 and unknown ones with 404", async () => {
    expect(
      await controlRequest(path, "POST", "/v1/dns/names", { name: "Web.Test.", address: "192.168.65.9" }),
    ).toEqual([{ name: "web.test", address: "192.168.65.9", ttl: null }]);
    await controlRequest(path, "POST", "/v1/dns/names", { name: "web.test", address: "fd00::9", ttl: 30 });
    const left = dns.registry.entries().map((e) => [e.name, e.address, e.secondsLeft]);
    expect(left.map(([name, address]) => [name, address])).toEqual([
      ["web.test", "192.168.65.9"],
      ["web.test", "fd00::9"],
    ]);
    // Seconds left count down from 30 while the test runs.
    expect(left[0]![2]).toBe(null);
    expect(left[1]![2]).toBeGreaterThan(20);
    expect(left[1]![2]).toBeLessThanOrEqual(30);
    for (const [body, message] of [
      [{ name: "web.test" }, 'expected {"name"'],
      [{ name: "web test", address: "1.2.3.4" }, "expected NAME=ADDRESS"],
      [{ name: "web.test", address: "nowhere" }, "is not an IP address"],
      [{ name: "*.web.test", address: "1.2.3.4" }, "wildcards and other types are for --dns-record"],
      [{ name: "y/a", address: "1.2.3.4" }, "is not a name"],
      [{ name: "x/CNAME", address: "db.test" }, "is not a name"],
      [{ name: "web.test", address: "1.2.3.4", ttl: 0 }, "ttl must be"],
      [{ name: "web.test", address: "1.2.3.4", ttl: 1.5 }, "ttl must be"],
    ] as const) {
      const error = await controlRequest(path, "POST", "/v1/dns/names", body).catch((e: unknown) => e);
      expect((error as Error).message, JSON.stringify(body)).toContain(message);
      expect((error as ControlError).status, JSON.stringify(body)).toBe(400);
    }
    const removed = (await controlRequest(path, "DELETE", "/v1/dns/names/web.test?address=fd00::9")) as {
      address: string;
    }[];
    expect(removed.map((r) => r.address)).toEqual(["fd00::9"]);
    for (const [resource, message] of [
      ["/v1/dns/names/web.test?address=nowhere", "nowhere"],
      ["/v1/dns/names/%zz", "is not a valid URL path segment"],
    ] as const) {
      const error = await controlRequest(path, "DELETE", resource).catch((e: unknown) => e);
      expect((error as Error).message, resource).toContain(message);
      expect((error as ControlError).status, resource).toBe(400);
    }
    const names = await cli("dns", "names", "ls", "--control", path);
    expect(names.out).toBe("web.test 192.168.65.9\n");
    expect((await cli("dns", "names", "rm", "web.test", "--control", path)).code).toBe(0);
    const gone = await cli("dns", "names", "rm", "web.test", "--control", path);
    expect([gone.code, gone.err]).toEqual([1, expect.stringContaining("web.test is not registered")]);
    expect(await controlRequest(path, "GET", "/v1/dns/log?limit=5")).toEqual([]);
    for (const args of [
      ["names", "add", "w.test", "1.2.3.4", "--ttl", "10s"],
      ["log", "--limit", "0"],
    ]) {
      const r = await cli("dns", ...args, "--control", path);
      expect([r.code, r.err]).toEqual([1, expect.stringContaining("is not a whole number ≥ 1")]);
    }
    const badLimit = await controlRequest(path, "GET", "/v1/dns/log?limit=x").catch((e: unknown) => e);
    expect((badLimit as Error).message).toContain("limit must be");
  });

  it("streams events as JSON lines to watching clients: publish, connections, links", async () => {
    const lines: string[] = [];
    const stop = new AbortController();
    const watching = watchEvents(path, (line) => lines.push(line), stop.signal);
    for (let i = 0; i < 100 && events.watchers === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const added = (await controlRequest(path, "POST", "/v1/publish", {
      spec: `0:${echoPort}`,
    })) as ForwardInfo[];
    const { connect } = await import("node:net");
    const c = connect(added[0]!.hostPort, "127.0.0.1");
    c.end("x");
    c.resume();
    await new Promise((resolve) => c.on("close", resolve));
    events.emit("link-added", { link: "qemu:/tmp/vm.sock#1", macs: [] });
    await controlRequest(path, "DELETE", `/v1/publish/${encodeURIComponent(added[0]!.id)}`);
    const want = ["publish-added", "connection", "connection-closed", "link-added", "publish-removed"];
    for (let i = 0; i < 100 && lines.length < want.length; i++) await new Promise((r) => setTimeout(r, 10));
    const got = lines.map((l) => JSON.parse(l) as { type: string; id?: string; time: number });
    expect(got.map((e) => e.type)).toEqual(want);
    expect(got[0]).toMatchObject({ id: added[0]!.id, target: `127.0.0.1:${echoPort}` });
    expect(got.every((e) => typeof e.time === "number")).toBe(true);
    stop.abort();
    await watching;
    for (let i = 0; i < 100 && events.watchers > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(events.watchers).toBe(0);
  });

  it("prints events a line each in `desktopd events`", async () => {
    let out = "";
    const io = {
      out: (t: string) => {
        out += t;
      },
      err: () => {},
    };
    const stop = new AbortController();
    const running = eventsCommand({ control: path }, io, stop.signal);
    for (let i = 0; i < 100 && events.watchers === 0; i++) await new Promise((r) => setTimeout(r, 10));
    events.emit("dial-failed", { id: "tcp/127.0.0.1:8080", remote: "127.0.0.1:5000", error: "refused" });
    for (let i = 0; i < 100 && out === ""; i++) await new Promise((r) => setTimeout(r, 10));
    stop.abort();
    expect(await running).toBe(0);
    expect(out).toMatch(
      /^\d{4}-\d\d-\d\dT[\d:.]+Z dial-failed id=tcp\/127\.0\.0\.1:8080 remote=127\.0\.0\.1:5000 error=refused\n$/,
    );
  });

  it("cuts off a watcher that stops reading instead of buffering for it", async () => {
    const { connect } = await import("node:net");
    const lazy = connect(path);
    lazy.write("GET /v1/events HTTP/1.1\r\nHost: desktopd\r\n\r\n");
    lazy.pause();
    for (let i = 0; i < 100 && events.watchers === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(events.watchers).toBe(1);
    const closed = new Promise((resolve) => lazy.on("close", resolve));
    lazy.on("error", () => {});
    // Far more than the socket buffers and the 1 MiB allowance hold.
    for (let i = 0; i < 64 && events.watchers > 0; i++) {
      for (let j = 0; j < 100; j++) events.emit("link-added", { link: "x".repeat(1024) });
      await new Promise((r) => setImmediate(r));
    }
    expect(events.watchers).toBe(0);
    lazy.resume();
    await closed;
  });

  it("says when no daemon listens, and refuses a socket another daemon holds", async () => {
    const none = await cli("status", "--control", join(dir, "nobody.sock"));
    expect(none.code).toBe(1);
    expect(none.err).toContain("no desktopd is running there");
    await expect(startControlServer(path, { forwarder, status: () => ({}) })).rejects.toThrow(/in use/);
    // A regular file is never taken for a stale socket; a socket nobody listens on is replaced.
    const file = join(dir, "file.sock");
    writeFileSync(file, "keep me");
    await expect(startControlServer(file, { forwarder, status: () => ({}) })).rejects.toThrow(/not a socket/);
    const stale = join(dir, "stale.sock");
    execFileSync("python3", [
      "-c",
      "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])",
      stale,
    ]);
    const again = await startControlServer(stale, { forwarder, status: () => ({}) });
    await again.close();
  });
});
