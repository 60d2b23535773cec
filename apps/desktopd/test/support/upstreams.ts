/**
 * Real upstream proxies from Debian for proxy tests — tinyproxy (HTTP, logs every request) and
 * microsocks (SOCKS5) — on loopback. With `hosts`, each runs in a private mount namespace over
 * that hosts file, so the names it resolves never reach the machine's resolver.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { shellQuote } from "@desktopd/stack/testing";

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

export async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
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

export interface Upstream {
  port: number;
  /** tinyproxy's log file (one line per request, CONNECT target included). */
  log: string;
  child: ChildProcess;
}

function start(command: string[], hosts: string | undefined): ChildProcess {
  if (!hosts) return spawn(command[0]!, command.slice(1), { stdio: "ignore" });
  const script = `mount --bind ${shellQuote(hosts)} /etc/hosts && exec "$@"`;
  return spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", script, "sh", ...command], {
    stdio: "ignore",
  });
}

export async function startTinyproxy(dir: string, name: string, hosts?: string): Promise<Upstream> {
  const port = await freePort();
  const log = join(dir, `${name}.log`);
  const conf = join(dir, `${name}.conf`);
  writeFileSync(
    conf,
    `Port ${port}\nListen 127.0.0.1\nTimeout 30\nAllow 127.0.0.1\nLogFile "${log}"\nLogLevel Info\nMaxClients 50\n`,
  );
  writeFileSync(log, "");
  const child = start(["tinyproxy", "-d", "-c", conf], hosts);
  await waitForPort(port);
  return { port, log, child };
}

export async function startMicrosocks(hosts?: string): Promise<Omit<Upstream, "log">> {
  const port = await freePort();
  const child = start(["microsocks", "-i", "127.0.0.1", "-p", String(port)], hosts);
  await waitForPort(port);
  return { port, child };
}
