/**
 * `desktopd run --configure -p ...` with a real guest: host clients reach guest servers through
 * published ports; a host port already taken fails that publish alone, naming its holder.
 */
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { haveRootAndNetns } from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_PATH } from "./support/daemon.js";
import { type Guest, startGuest } from "./support/guest.js";

const env = haveRootAndNetns();
const run = promisify(execFile);

const GUEST_UDP_ECHO = `const u = require("dgram").createSocket("udp4");
u.on("message", (m, r) => u.send(Buffer.concat([Buffer.from(r.address + " "), m]), r.port, r.address));
u.bind(7001);`;

/** Host port of the published forward leading to `guestPort` over `protocol`, from the ready line. */
function publishedPort(guest: Guest, protocol: "tcp" | "udp", guestPort: number): number {
  const entry = (guest.daemon.info.published ?? "")
    .split(",")
    .find((p) => p.startsWith(`${protocol}/`) && p.endsWith(`>${guestPort}`));
  if (!entry) throw new Error(`no ${protocol} port published for ${guestPort}: ${guest.daemon.describe()}`);
  return Number(entry.slice(entry.lastIndexOf(":") + 1, entry.indexOf(">")));
}

/** GET /hello.txt through a published host port, with curl. */
async function fetchHello(port: number): Promise<string> {
  const { stdout } = await run("curl", [
    "-sS",
    "--fail",
    "--max-time",
    "20",
    `http://127.0.0.1:${port}/hello.txt`,
  ]);
  return stdout;
}

describe.skipIf(!env.ok)("desktopd run --publish", () => {
  let guest: Guest;
  let holder: ReturnType<typeof spawn>;
  let takenPort: number;
  let webRoot: string;
  let controlPath: string;

  beforeAll(async () => {
    // Another process holds a host port before the daemon starts.
    holder = spawn(
      process.execPath,
      ["-e", `const s=require("net").createServer().listen(0,"127.0.0.1",()=>console.log(s.address().port))`],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    takenPort = Number(((await once(holder.stdout!, "data")) as [Buffer])[0].toString().trim());
    webRoot = await mkdtemp(join(tmpdir(), "dtd-pub-"));
    controlPath = join(webRoot, "control.sock");
    guest = await startGuest("pub", {
      configure: true,
      args: [
        "-p",
        "0:8000",
        "--publish",
        "127.0.0.1::7001/udp",
        "-p",
        `${takenPort}:8000`,
        "--control",
        controlPath,
      ],
    });
    await writeFile(join(webRoot, "hello.txt"), "published from the guest\n");
    guest.ns.spawn("python3", ["-m", "http.server", "--bind", "0.0.0.0", "--directory", webRoot, "8000"], {
      stdio: "ignore",
    });
    guest.ns.spawn(process.execPath, ["-e", GUEST_UDP_ECHO]);
    await guest.shOk(
      "for i in $(seq 100); do ss -ltn 'sport = :8000' | grep -q 8000 && ss -lun 'sport = :7001' | grep -q 7001 && exit 0; sleep 0.05; done; exit 1",
    );
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      holder?.kill();
      if (webRoot) await rm(webRoot, { recursive: true, force: true });
    }
  });

  it("host curl reaches the guest's HTTP server", async () => {
    const port = publishedPort(guest, "tcp", 8000);
    expect(await fetchHello(port)).toBe("published from the guest\n");
  });

  it("UDP reaches the guest's echo server, from the host address", async () => {
    const port = publishedPort(guest, "udp", 7001);
    const { stdout } = await run("bash", ["-c", `printf ping | socat -t 1 - UDP:127.0.0.1:${port}`]);
    expect(stdout).toBe(`${guest.daemon.info.host} ping`);
  });

  it("a host port already taken fails that publish alone, and says who holds it", () => {
    expect(guest.daemon.alive()).toBe(true);
    expect(guest.daemon.info.published?.split(",")).toHaveLength(2);
    expect(guest.daemon.stderr()).toContain(
      `tcp 127.0.0.1:${takenPort} is already in use: held by node (pid ${holder.pid}`,
    );
  });

  it("publishes and unpublishes at run time through the control socket", async () => {
    const cli = (...args: string[]) =>
      run(process.execPath, [CLI_PATH, ...args, "--control", controlPath]).then((r) => r.stdout);
    // `desktopd events` follows along, as a tool watching the daemon would.
    const watcher = spawn(process.execPath, [CLI_PATH, "events", "--json", "--control", controlPath]);
    let seen = "";
    watcher.stdout.setEncoding("utf8").on("data", (t: string) => {
      seen += t;
    });
    // The subscription is live once a first event gets through: publish until one does.
    for (let i = 0; i < 50 && !seen.includes("publish"); i++) {
      const probe = await cli("publish", "add", "127.0.0.1::8001");
      await cli("publish", "rm", probe.split(" ")[0]!);
      await new Promise((r) => setTimeout(r, 50));
    }
    const added = await cli("publish", "add", "127.0.0.1::8000");
    const id = added.split(" ")[0]!;
    const port = Number(id.slice(id.lastIndexOf(":") + 1));
    expect(await fetchHello(port)).toBe("published from the guest\n");
    const status = JSON.parse(await cli("status", "--json")) as {
      links: { name: string; macs: string[] }[];
      published: { id: string; stats: { accepted: number } }[];
    };
    // The namespace's TAP is a link of the switch, with the guest's MAC learned on it.
    expect(status.links.find((l) => l.macs.includes(guest.daemon.info.mac!))?.name).toMatch(/^tap:/);
    expect(status.published.find((f) => f.id === id)?.stats.accepted).toBe(1);
    await cli("publish", "rm", id);
    for (let i = 0; i < 100 && !seen.includes(`"publish-removed","time"`); i++)
      await new Promise((r) => setTimeout(r, 20));
    watcher.kill("SIGINT");
    const types = seen
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; id?: string })
      .filter((e) => e.id === id)
      .map((e) => e.type);
    expect(types).toEqual(["publish-added", "connection", "connection-closed", "publish-removed"]);
    const refused = await run("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${port}/`]).catch(
      (e) => e,
    );
    expect((refused as { code?: number }).code).toBe(7); // curl: could not connect
  });
});
