/**
 * Automatic forwarding with real guests: a netns guest (read from inside the namespace) and a VM
 * (running the reporter line `desktopd autoforward guest-command` prints, busybox only). Servers
 * started in the guest become reachable on host 127.0.0.1 and stop being reachable when they
 * exit; UDP likewise; an ignore rule; a host port already taken (waits, reported once, published
 * when freed); an explicit publish winning; a reporter flood; a VM rebooted on the same socket.
 * Deadlines are generous bounds for a loaded machine, not timings: those belong in the benchmark.
 */
import { createSocket } from "node:dgram";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  bootVm,
  consoleReport,
  haveRootAndNetns,
  missingCommands,
  skipBecause,
  type TestVm,
  vmUnavailableReason,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { controlRequest, watchEvents } from "../src/control/client.js";
import { cli } from "./support/cli.js";
import { type Guest, startGuest } from "./support/guest.js";
import { freePort } from "./support/upstreams.js";

const env = haveRootAndNetns();
const ready = env.ok && !skipBecause(missingCommands("python3", "socat"));

interface AutoInfo {
  forwards: { guestIp: string; guestPort: number; hostPort: number; state: string; problem?: string }[];
  counters: { skipped: Record<string, number>; reports: number };
  guestCommand: string;
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function httpGet(port: number, path = "/"): Promise<string | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2000) });
    return await res.text();
  } catch {
    return undefined;
  }
}

async function refused(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1");
    c.once("connect", () => {
      c.destroy();
      resolve(undefined);
    });
    c.once("error", () => resolve(true));
  });
}

describe.skipIf(!ready)("automatic port forwarding", () => {
  const dir = mkdtempSync(join(tmpdir(), "desktopd-autofwd-"));
  const control = join(dir, "control.sock");
  const qemuSock = join(dir, "vm.sock");
  let guest: Guest;
  const info = async () => (await controlRequest(control, "GET", "/v1/autoforward")) as AutoInfo;

  beforeAll(async () => {
    writeFileSync(join(dir, "index.html"), "from the guest\n");
    guest = await startGuest("autofwd", {
      configure: true,
      autoforward: true,
      args: ["--control", control, "--qemu-socket", qemuSock, "--autoforward-rule", "ignore 2222"],
    });
  });

  afterAll(async () => {
    await guest?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const serve = (port: number, bind = "0.0.0.0") =>
    guest.ns.spawn("python3", ["-m", "http.server", String(port), "--bind", bind, "--directory", dir]);

  it("publishes a server started in the namespace, and unpublishes it when it exits", async () => {
    const port = await freePort();
    const started = Date.now();
    const server = serve(port);
    expect(await until("reachable", () => httpGet(port, "/index.html"))).toBe("from the guest\n");
    process.stderr.write(`autoforward: netns TCP listener reachable after ${Date.now() - started} ms\n`);
    const ls = await cli("publish", "ls", "--control", control);
    expect(ls.out).toContain(`tcp/127.0.0.1:${port} -> 192.168.65.3:${port}  [auto]`);
    server.kill();
    await until("unpublished", () => refused(port));
    // The listing follows the same report: no automatic forward is left for the port.
    await until("forgotten", async () =>
      (await info()).forwards.some((f) => f.hostPort === port) ? undefined : true,
    );
  });

  it("publishes a UDP server the same way", async () => {
    const port = await freePort();
    const echo = guest.ns.spawn("socat", [`UDP4-RECVFROM:${port},fork`, "EXEC:cat"]);
    const client = createSocket("udp4");
    try {
      const answer = await until("udp echo", async () => {
        const got = new Promise<string | undefined>((resolve) => {
          client.once("message", (m) => resolve(m.toString()));
          setTimeout(() => resolve(undefined), 500);
        });
        client.send("ping-udp", port, "127.0.0.1");
        return got;
      });
      expect(answer).toBe("ping-udp");
    } finally {
      client.close();
      echo.kill();
    }
  });

  it("publishes a server listening only on the guest's IPv6 address, dialled there", async () => {
    // The network learns the guest's IPv6 address from its packets.
    await guest.shOk("ping -6 -c 1 -W 5 -I fdc4:f303:9324::3 fdc4:f303:9324::1");
    const port = await freePort();
    const server = serve(port, "fdc4:f303:9324::3");
    try {
      expect(await until("reachable", () => httpGet(port, "/index.html"))).toBe("from the guest\n");
      const ls = await cli("publish", "ls", "--control", control);
      expect(ls.out).toContain(`tcp/127.0.0.1:${port} -> [fdc4:f303:9324::3]:${port}  [auto]`);
    } finally {
      server.kill();
    }
    await until("unpublished", () => refused(port));
  });

  it("skips ignored ports and loopback-only listeners", async () => {
    const loopbackPort = await freePort();
    const ignored = serve(2222);
    const local = serve(loopbackPort, "127.0.0.1");
    try {
      await until("both seen", async () => {
        const s = (await info()).counters.skipped;
        return (s.ignored ?? 0) > 0 && (s["guest-loopback"] ?? 0) > 0 ? true : undefined;
      });
      const forwards = (await info()).forwards;
      expect(forwards.some((f) => f.guestPort === 2222 || f.guestPort === loopbackPort)).toBe(false);
    } finally {
      ignored.kill();
      local.kill();
    }
  });

  it("waits for a host port that is taken, says so once, and publishes it when it frees", async () => {
    const holder = net.createServer((s) => s.end("host holder\n"));
    await new Promise<void>((r) => holder.listen(0, "127.0.0.1", r));
    const port = (holder.address() as net.AddressInfo).port;
    const stop = new AbortController();
    const events: { type: string }[] = [];
    const watching = watchEvents(control, (l) => events.push(JSON.parse(l)), stop.signal).catch(() => {});
    const server = serve(port);
    try {
      const waiting = await until("waiting", async () =>
        (await info()).forwards.find((f) => f.hostPort === port && f.problem !== undefined),
      );
      expect(waiting.problem).toMatch(/in use/);
      await new Promise((r) => setTimeout(r, 1500));
      expect(events.filter((e) => e.type === "autoforward-failed")).toHaveLength(1);
      await new Promise<void>((r) => holder.close(() => r()));
      expect(await until("published once free", () => httpGet(port, "/index.html"))).toBe("from the guest\n");
    } finally {
      stop.abort();
      await watching;
      server.kill();
    }
  });

  it("lets an explicit publish win over the automatic forward", async () => {
    const port = await freePort();
    const server = serve(port);
    try {
      await until("auto", () => httpGet(port, "/index.html"));
      const added = await cli("publish", "add", `127.0.0.1:${port}:${port}`, "--control", control);
      expect(added.code, added.err).toBe(0);
      const ls = await cli("publish", "ls", "--control", control);
      expect(ls.out).toContain(`tcp/127.0.0.1:${port} -> 192.168.65.3:${port}  open`);
      expect(ls.out).not.toContain(`${port}  [auto]`);
      await new Promise((r) => setTimeout(r, 1200));
      expect((await info()).forwards.find((f) => f.hostPort === port)?.state).toBe("explicit");
      expect(await httpGet(port, "/index.html")).toBe("from the guest\n");
      await cli("publish", "rm", `tcp/127.0.0.1:${port}`, "--control", control);
    } finally {
      server.kill();
    }
  });

  it("bounds a flooding reporter: an oversized report closes it, a huge table is capped", async () => {
    // 1.5 MiB without an end marker: cut off.
    await guest.sh(`head -c 1572864 /dev/zero | tr '\\0' 'x' | socat -t 3 - TCP:192.168.65.1:6023`);
    // 600 listeners: at most 256 automatic forwards, said once.
    const lines = Array.from(
      { length: 600 },
      (_, i) =>
        `${i}: 00000000:${(40000 + i).toString(16).toUpperCase()} 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1`,
    );
    writeFileSync(join(dir, "flood.txt"), `@tcp\n${lines.join("\n")}\n@end\n`);
    const stop = new AbortController();
    const events: { type: string; max?: number }[] = [];
    const watching = watchEvents(control, (l) => events.push(JSON.parse(l)), stop.signal).catch(() => {});
    await guest.sh(`socat -t 2 - TCP:192.168.65.1:6023 < ${join(dir, "flood.txt")}`);
    await until("capped", async () => (events.some((e) => e.type === "autoforward-cap") ? true : undefined));
    stop.abort();
    await watching;
    expect(events.find((e) => e.type === "autoforward-cap")?.max).toBe(256);
    const status = (await controlRequest(control, "GET", "/v1/autoforward")) as AutoInfo & {
      counters: { rejectedReports: number };
    };
    expect(status.counters.rejectedReports).toBeGreaterThanOrEqual(1);
    expect(guest.daemon.alive()).toBe(true);
    // The namespace's own reports put things right again.
    await until("back to the real listeners", async () =>
      (await info()).forwards.length < 10 ? true : undefined,
    );
  });

  it("forwards a VM's server through its reporter, drops it when the VM dies, and again after a reboot", async () => {
    const reason = vmUnavailableReason();
    if (reason) {
      process.stderr.write(`!!! the VM part is SKIPPED: ${reason}\n`);
      return;
    }
    const port = await freePort();
    const reporter = (await cli("autoforward", "guest-command", "--control", control)).out.trim();
    expect(reporter).toContain("nc 192.168.65.1 6023");
    const boot = async (n: number): Promise<TestVm> => {
      const vm = await bootVm({
        name: `autofwd-${n}`,
        netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${qemuSock}`,
      });
      try {
        await vm.sh("udhcpc -i eth0 -q -n -t 10", 60_000);
        await vm.sh(`mkdir -p /www && echo vm-${n} > /www/index.html && (httpd -p ${port} -h /www &)`);
        await vm.sh(`(sh -c '${reporter.replaceAll("'", "'\\''")}' >/dev/null 2>&1 &)`);
      } catch (error) {
        process.stderr.write(`${consoleReport([vm])}\n`);
        await vm.close();
        throw error;
      }
      return vm;
    };
    let vm = await boot(1);
    try {
      expect(await until("vm reachable", () => httpGet(port, "/index.html"), 30_000)).toBe("vm-1\n");
      await vm.close();
      await until("dropped after the VM is gone", () => refused(port), 20_000);
      vm = await boot(2);
      expect(await until("vm reachable again", () => httpGet(port, "/index.html"), 30_000)).toBe("vm-2\n");
    } finally {
      await vm.close();
    }
  });
});
