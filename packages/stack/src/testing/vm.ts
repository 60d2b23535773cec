/**
 * A real Linux VM for end-to-end tests: Debian's cloud kernel and a busybox initramfs booted by
 * qemu under TCG (no KVM needed), its NIC on whatever netdev the test names. Commands run in a
 * shell on the serial console; the whole console is kept in a log file and quoted when a
 * command fails, so a failing test shows what the guest saw.
 *
 * @example
 * ```ts
 * const vm = await bootVm({ name: "stream", netdev: "stream,id=n0,server=off,addr.type=unix,addr.path=/tmp/q.sock" });
 * await vm.sh("udhcpc -i eth0 -q -n");
 * await vm.close();
 * ```
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildVmImage, type VmImage } from "./initramfs.js";

export {
  buildVmImage,
  moduleLoadOrder,
  sharedLibraries,
  type VmImage,
  type VmImageOptions,
  vmUnavailableReason,
} from "./initramfs.js";

export interface VmOptions {
  /** Used in the console log's file name. */
  name: string;
  /** The `-netdev` value; its id must be "n0". */
  netdev: string;
  /** The NIC's MAC (default: random, locally administered). */
  mac?: string;
  /** Guest memory in MiB (default 256). */
  memoryMiB?: number;
  /** Boot deadline (default 60 s: TCG on a busy 2-core machine). */
  bootTimeoutMs?: number;
  /** Host binaries (with their libraries) to add to the image; ignored when `image` is given. */
  extraBinaries?: readonly string[];
  image?: VmImage;
}

export interface VmResult {
  code: number;
  output: string;
}

export interface TestVm {
  readonly mac: string;
  /** Path of the serial console log. */
  readonly consoleLog: string;
  /** Runs a shell command in the guest; resolves with its exit code and output (stdout + stderr). */
  exec(command: string, timeoutMs?: number): Promise<VmResult>;
  /** Like exec, but rejects unless the command exits 0, quoting the end of the console. */
  sh(command: string, timeoutMs?: number): Promise<string>;
  /** The last `lines` lines of the console. */
  consoleTail(lines?: number): string;
  /** Powers the VM off (kills qemu). */
  close(): Promise<void>;
  /** Settles when qemu exits. */
  readonly exited: Promise<number | null>;
}

const READY = "@@VM-READY@@";
let sequence = 0;

export async function bootVm(o: VmOptions): Promise<TestVm> {
  const image = o.image ?? buildVmImage({ extraBinaries: o.extraBinaries });
  const mac = o.mac ?? randomMac();
  const logDir = join(tmpdir(), "desktopd-vm-logs");
  mkdirSync(logDir, { recursive: true });
  const consoleLog = join(logDir, `${o.name}-${process.pid}-${++sequence}.log`);
  writeFileSync(consoleLog, "");
  const args = [
    "-nodefaults",
    "-no-user-config",
    "-accel",
    "tcg",
    "-m",
    String(o.memoryMiB ?? 256),
    "-display",
    "none",
    "-serial",
    "stdio",
    "-no-reboot",
    "-kernel",
    image.kernel,
    "-initrd",
    image.initrd,
    "-append",
    "console=ttyS0 quiet loglevel=3 panic=-1",
    "-netdev",
    o.netdev,
    // No option ROM: the VM boots its kernel directly, and Debian ships the ROMs separately.
    "-device",
    `virtio-net-pci,netdev=n0,mac=${mac},romfile=`,
  ];
  const qemu = spawn("qemu-system-x86_64", args, { stdio: ["pipe", "pipe", "pipe"] });
  const vm = new Vm(qemu, mac, consoleLog);
  try {
    await vm.waitFor(READY, o.bootTimeoutMs ?? 60_000);
  } catch (error) {
    await vm.close();
    throw error;
  }
  return vm;
}

class Vm implements TestVm {
  private console = "";
  /** Where the next command's output search starts. */
  private scanFrom = 0;
  private waiters: (() => void)[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private nextId = 0;
  readonly exited: Promise<number | null>;

  constructor(
    private readonly qemu: ChildProcess,
    readonly mac: string,
    readonly consoleLog: string,
  ) {
    const onOutput = (chunk: Buffer) => {
      const text = chunk.toString("latin1").replace(/\r/g, "");
      this.console += text;
      appendFileSync(consoleLog, text);
      for (const w of this.waiters.splice(0)) w();
    };
    qemu.stdout!.on("data", onOutput);
    qemu.stderr!.on("data", (chunk: Buffer) => onOutput(Buffer.from(`[qemu] ${chunk.toString()}`)));
    this.exited = new Promise((resolve) => qemu.once("exit", (code) => resolve(code)));
    this.exited.then(() => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves once `marker` appears after `scanFrom`; returns its index. */
  waitFor(marker: string | RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const re = typeof marker === "string" ? new RegExp(escapeRegExp(marker)) : marker;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`VM: no "${re.source}" within ${timeoutMs} ms\n${this.consoleTail()}`));
      }, timeoutMs);
      const check = () => {
        const m = re.exec(this.console.slice(this.scanFrom));
        if (m) {
          clearTimeout(timer);
          m.index += this.scanFrom;
          resolve(m);
          return;
        }
        if (this.qemu.exitCode !== null || this.qemu.signalCode !== null) {
          clearTimeout(timer);
          reject(
            new Error(
              `VM: qemu exited (${this.qemu.exitCode ?? this.qemu.signalCode})\n${this.consoleTail()}`,
            ),
          );
          return;
        }
        this.waiters.push(check);
      };
      check();
    });
  }

  exec(command: string, timeoutMs = 60_000): Promise<VmResult> {
    // One command at a time: the console is a single line.
    const run = this.queue.then(() => this.execNow(command, timeoutMs));
    this.queue = run.catch(() => {});
    return run;
  }

  private async execNow(command: string, timeoutMs: number): Promise<VmResult> {
    const id = `${process.pid}x${++this.nextId}`;
    // The markers are printed with format strings so that no echo of the line itself can match.
    const line = `printf '@@%s ${id}@@\\n' BEGIN; ( ${command} ) 2>&1; printf '@@%s %d ${id}@@\\n' END $?\n`;
    this.qemu.stdin!.write(line);
    const begin = await this.waitFor(`@@BEGIN ${id}@@\n`, timeoutMs);
    const end = await this.waitFor(new RegExp(`@@END (\\d+) ${id}@@`), timeoutMs);
    const output = this.console.slice(begin.index + begin[0].length, end.index);
    this.scanFrom = end.index + end[0].length;
    return { code: Number(end[1]), output };
  }

  async sh(command: string, timeoutMs?: number): Promise<string> {
    const r = await this.exec(command, timeoutMs);
    if (r.code !== 0) {
      throw new Error(
        `VM command failed (exit ${r.code}): ${command}\n${r.output}\n--- console (${this.consoleLog}) ---\n${this.consoleTail()}`,
      );
    }
    return r.output;
  }

  consoleTail(lines = 60): string {
    return this.console.split("\n").slice(-lines).join("\n");
  }

  async close(): Promise<void> {
    if (this.qemu.exitCode === null && this.qemu.signalCode === null) this.qemu.kill("SIGKILL");
    await this.exited;
  }
}

function randomMac(): string {
  const b = [0x52, 0x54, 0x00, ...Array.from({ length: 3 }, () => Math.floor(Math.random() * 256))];
  return b.map((x) => x.toString(16).padStart(2, "0")).join(":");
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * For a failed test: where each VM's serial console log is kept, and its last lines — the
 * guest's side of what went wrong (kernel messages, udhcpc, the commands run).
 */
export function consoleReport(vms: readonly TestVm[], lines = 40): string {
  return vms
    .map((vm) => `--- console of VM ${vm.mac} (kept at ${vm.consoleLog}) ---\n${vm.consoleTail(lines)}`)
    .join("\n");
}
