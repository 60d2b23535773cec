/**
 * Builds the test VM's initramfs from what Debian installs: busybox-static as every tool, and
 * the virtio-net and virtio-pci modules of the `linux-image-cloud-amd64` kernel (with their
 * dependencies, loaded in order by /init), plus any host binaries asked for with the shared
 * libraries they load. The archive is cached per kernel and recipe.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";

export interface VmImageOptions {
  /**
   * Absolute paths of host binaries to copy into the image at the same paths, each with every
   * shared library `ldd` lists and the dynamic loader (e.g. `["/usr/bin/iperf3"]`).
   */
  extraBinaries?: readonly string[];
}

/** What the VM needs from the host: a kernel, busybox, and the modules behind a virtio NIC. */
export interface VmImage {
  kernel: string;
  initrd: string;
  kernelVersion: string;
}

const BUSYBOX = "/bin/busybox";
const ROOT_MODULES = ["virtio_pci", "virtio_net"];
/** Bump when the image's layout changes in a way the hashed scripts do not show. */
const RECIPE_VERSION = "2";

/** The console protocol /init speaks (see vm.ts): a marker when ready, then a shell per line. */
const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /run /etc /root
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /etc/modules.order); do insmod "/lib/modules/$m" || echo "insmod $m failed"; done
for i in /sys/class/net/*; do ip link set "\${i##*/}" up; done
stty -F /dev/ttyS0 -echo -onlcr 2>/dev/null
echo "@@VM-READY@@"
# A shell that exits (a syntax error, "exit") is started again: init must never end.
while true; do sh -s </dev/ttyS0 >/dev/ttyS0 2>&1; done
`;

/** udhcpc event script: applies the lease like a distribution's would. */
const UDHCPC_SCRIPT = `#!/bin/sh
case "$1" in
  deconfig) ip link set "$interface" up; ip -4 addr flush dev "$interface" ;;
  bound|renew)
    [ -n "$mtu" ] && ip link set "$interface" mtu "$mtu"
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/$mask" dev "$interface"
    for r in $router; do ip route replace default via "$r" dev "$interface"; break; done
    : > /etc/resolv.conf
    for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
    ;;
esac
exit 0
`;

/** Why a VM cannot be booted here, or undefined when it can. */
export function vmUnavailableReason(): string | undefined {
  if (!existsSync("/usr/bin/qemu-system-x86_64"))
    return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
  if (!existsSync(BUSYBOX)) return "busybox is not installed (apt-get install busybox-static)";
  if (!findKernel()) return "no cloud kernel in /boot (apt-get install linux-image-cloud-amd64)";
  return undefined;
}

function findKernel(): { version: string; path: string } | undefined {
  if (!existsSync("/boot")) return undefined;
  const versions = readdirSync("/boot")
    .filter((f) => f.startsWith("vmlinuz-") && existsSync(join("/lib/modules", f.slice(8), "modules.dep")))
    .map((f) => f.slice(8))
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const version = versions.findLast((v) => v.endsWith("-cloud-amd64")) ?? versions.at(-1);
  return version ? { version, path: join("/boot", `vmlinuz-${version}`) } : undefined;
}

/** Module files (relative to /lib/modules/VERSION) in load order: every dependency before its user. */
export function moduleLoadOrder(modulesDep: string, roots: readonly string[]): string[] {
  const deps = new Map<string, string[]>();
  for (const line of modulesDep.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    deps.set(
      line.slice(0, colon),
      line
        .slice(colon + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean),
    );
  }
  const byName = new Map<string, string>();
  for (const file of deps.keys()) byName.set(moduleName(file), file);
  const order: string[] = [];
  const visit = (file: string) => {
    if (order.includes(file)) return;
    for (const dep of deps.get(file) ?? []) visit(dep);
    order.push(file);
  };
  for (const root of roots) {
    const file = byName.get(root);
    // Not a module: built into the kernel, nothing to load.
    if (file) visit(file);
  }
  return order;
}

function moduleName(file: string): string {
  return basename(file)
    .replace(/\.ko(\.[a-z]+)?$/, "")
    .replace(/-/g, "_");
}

/**
 * Absolute paths of the libraries in `ldd` output, the dynamic loader included; the vDSO (no
 * path) is skipped. Throws when a library is "not found": the binary could not run in the VM.
 */
export function sharedLibraries(lddOutput: string): string[] {
  const paths: string[] = [];
  for (const line of lddOutput.split("\n")) {
    if (line.includes("=> not found")) throw new Error(`ldd: ${line.trim()}`);
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line);
    if (m) paths.push(m[1]!);
  }
  return paths;
}

/** The binaries and everything they load; a static binary (ldd finds nothing) comes alone. */
function hostFiles(binaries: readonly string[]): string[] {
  const files = new Set<string>();
  for (const binary of binaries) {
    if (!existsSync(binary)) throw new Error(`cannot build the test VM: ${binary} does not exist`);
    files.add(binary);
    const ldd = spawnSync("ldd", [binary], { encoding: "utf8" });
    for (const lib of sharedLibraries(ldd.stdout ?? "")) files.add(lib);
  }
  return [...files].sort();
}

/** Builds (or reuses) the image; throws with the reason when the host lacks a part. */
export function buildVmImage(options: VmImageOptions = {}): VmImage {
  const missing = vmUnavailableReason();
  if (missing) throw new Error(`cannot build the test VM: ${missing}`);
  const kernel = findKernel()!;
  const moduleDir = join("/lib/modules", kernel.version);
  const order = moduleLoadOrder(readFileSync(join(moduleDir, "modules.dep"), "utf8"), ROOT_MODULES);
  const extras = hostFiles(options.extraBinaries ?? []);
  const hash = createHash("sha256").update(
    [RECIPE_VERSION, kernel.version, INIT_SCRIPT, UDHCPC_SCRIPT, ...order].join("\0"),
  );
  // By content too: a package upgrade must not reuse an image with the old binary.
  for (const file of extras) hash.update(`\0${file}\0`).update(readFileSync(file));
  const recipe = hash.digest("hex").slice(0, 16);
  const dir = join(tmpdir(), `desktopd-vm-${recipe}`);
  const initrd = join(dir, "initrd.cpio");
  if (existsSync(initrd)) return { kernel: kernel.path, initrd, kernelVersion: kernel.version };

  // Per process: test files running at once may build the same image; the rename is atomic.
  const root = join(dir, `root-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  for (const d of ["bin", "etc/udhcpc", "lib/modules", "usr/share/udhcpc"])
    mkdirSync(join(root, d), { recursive: true });
  copyFileSync(BUSYBOX, join(root, "bin/busybox"));
  chmodSync(join(root, "bin/busybox"), 0o755);
  writeFileSync(join(root, "init"), INIT_SCRIPT, { mode: 0o755 });
  // Where busybox builds look for it: Debian's build uses /etc/udhcpc, upstream /usr/share/udhcpc.
  for (const path of ["etc/udhcpc/default.script", "usr/share/udhcpc/default.script"])
    writeFileSync(join(root, path), UDHCPC_SCRIPT, { mode: 0o755 });
  const loaded: string[] = [];
  for (const file of order) {
    const name = `${moduleName(file)}.ko`;
    const source = join(moduleDir, file);
    const target = join(root, "lib/modules", name);
    // busybox insmod takes plain .ko files: decompress what Debian compressed.
    if (file.endsWith(".ko.xz"))
      writeFileSync(target, execFileSync("xz", ["-dc", source], { maxBuffer: 64 << 20 }));
    else if (file.endsWith(".ko.zst"))
      writeFileSync(target, execFileSync("zstd", ["-dc", source], { maxBuffer: 64 << 20 }));
    else copyFileSync(source, target);
    loaded.push(name);
  }
  writeFileSync(join(root, "etc/modules.order"), `${loaded.join("\n")}\n`);
  // Symlinks are followed: each path becomes a regular file, which is all the loader needs.
  for (const file of extras) {
    const target = join(root, file);
    mkdirSync(dirname(target), { recursive: true });
    copyFileSync(file, target);
    chmodSync(target, 0o755);
  }
  const files = execFileSync(BUSYBOX, ["find", "."], { cwd: root, encoding: "utf8" });
  const archive = execFileSync(BUSYBOX, ["cpio", "-o", "-H", "newc", "-R", "0:0"], {
    cwd: root,
    input: files,
    maxBuffer: 256 << 20,
  });
  writeFileSync(`${initrd}.${process.pid}`, archive);
  renameSync(`${initrd}.${process.pid}`, initrd);
  rmSync(root, { recursive: true, force: true });
  return { kernel: kernel.path, initrd, kernelVersion: kernel.version };
}
