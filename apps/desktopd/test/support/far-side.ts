/**
 * The "VPN" side of a proxy test: a second network namespace joined to the host by a veth pair,
 * reachable from the host only, with a web server on 80 and 443 (a test certificate for the
 * names given). Guests reach it through desktopd, as they would reach a corporate network.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createNetns, type Netns } from "@desktopd/stack/testing";

const FAR_WEB = fileURLToPath(new URL("./far-web.py", import.meta.url));

export interface FarSide {
  readonly ns: Netns;
  /** The web server's address, reachable from the host. */
  readonly ip: string;
  /** Its IPv6 address (HTTP on 80 only), reachable from the host. */
  readonly ip6: string;
  close(): Promise<void>;
}

/** `third` picks the /24: 10.201.THIRD.0, host .1, far side .2. */
export async function startFarSide(names: string[], third = 0): Promise<FarSide> {
  const ns = await createNetns("far");
  const hostIf = `dtdf${process.pid % 100000}${third}`;
  const dir = mkdtempSync(join(tmpdir(), "desktopd-far-"));
  const host = `10.201.${third}.1`;
  const ip = `10.201.${third}.2`;
  const ip6 = `fd42:201:${third}::2`;
  try {
    const ipCmd = (...args: string[]) => execFileSync("ip", args, { stdio: "pipe" });
    ipCmd("link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns.name);
    ipCmd("addr", "add", `${host}/24`, "dev", hostIf);
    // nodad: usable at once, not after a second of duplicate address detection.
    ipCmd("addr", "add", `fd42:201:${third}::1/64`, "dev", hostIf, "nodad");
    ipCmd("link", "set", hostIf, "up");
    await ns.exec("ip", ["addr", "add", `${ip}/24`, "dev", "eth0"]);
    await ns.exec("ip", ["addr", "add", `${ip6}/64`, "dev", "eth0", "nodad"]);
    await ns.exec("ip", ["link", "set", "eth0", "up"]);
    const cert = join(dir, "cert.pem");
    const key = join(dir, "key.pem");
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"],
        ...["-keyout", key, "-out", cert, "-days", "2", "-subj", `/CN=${names[0]}`],
        ...["-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`],
      ],
      { stdio: "pipe" },
    );
    const web = ns.spawn("python3", [FAR_WEB, ip, cert, key, ip6]);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("far-side web server did not start")), 10_000);
      web.stdout?.on("data", (b: Buffer) => {
        if (b.toString().includes("ready")) {
          clearTimeout(timer);
          resolve();
        }
      });
      web.once("exit", (code) => reject(new Error(`far-side web server exited with ${code}`)));
    });
  } catch (error) {
    await ns.remove();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    ns,
    ip,
    ip6,
    async close() {
      try {
        execFileSync("ip", ["link", "del", hostIf], { stdio: "ignore" });
      } catch {}
      await ns.remove();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
