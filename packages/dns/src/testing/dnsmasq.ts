/**
 * A real dnsmasq on a loopback address of its own: the upstream, split-horizon server and
 * reference implementation of these tests. Nothing here ever leaves the machine.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";

export interface Dnsmasq {
  readonly host: string;
  readonly port: number;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

let next = 1;

/** A loopback address unique to this test process: 127.A.B.N (Linux routes all of 127/8 to lo). */
export function loopbackAddress(): string {
  const pid = process.pid;
  return `127.${60 + (pid % 150)}.${(pid >> 8) % 250}.${next++}`;
}

/** Starts dnsmasq answering only what `args` define (no resolv.conf, no hosts file; dnsmasq's own cache as usual). */
export async function startDnsmasq(args: string[], host = loopbackAddress(), port = 53): Promise<Dnsmasq> {
  const child = spawn(
    "dnsmasq",
    [
      "--keep-in-foreground",
      "--no-resolv",
      "--no-hosts",
      "--conf-file=/dev/null",
      `--listen-address=${host}`,
      `--port=${port}`,
      "--bind-interfaces",
      "--log-facility=-",
      "--user=root",
      ...args,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  const collect = (b: Buffer) => {
    log += b.toString();
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dnsmasq did not start:\n${log}`)), 10_000);
    const check = () => {
      if (/started, version/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stderr?.on("data", check);
    child.stdout?.on("data", check);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`dnsmasq exited (${code}):\n${log}`));
    });
  });
  return {
    host,
    port,
    child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}
