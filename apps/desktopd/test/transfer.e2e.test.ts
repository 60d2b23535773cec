/**
 * TCP and UDP between a Linux guest (configured by `desktopd run --configure`) and servers on
 * the host's 127.0.0.1, reached through the host address 192.168.65.254.
 */
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  closedTcpPort,
  downloadScript,
  type HostHttpServer,
  haveRootAndNetns,
  seededSha256,
  startHttpServer,
  uploadScript,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Guest, q, startGuest } from "./support/guest.js";
import { startUdpEchoServer, type UdpEchoServer } from "./support/udp-echo.js";

const env = haveRootAndNetns();
const HOST = "192.168.65.254";
const MB100 = 100 * 1000 * 1000;
const CONCURRENT = 200;

describe.skipIf(!env.ok)("TCP and UDP to the host", () => {
  let guest: Guest;
  let http: HostHttpServer;
  let udp: UdpEchoServer;
  let dir: string;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "dtd-transfer-"));
    http = await startHttpServer({ holdUntil: CONCURRENT });
    udp = await startUdpEchoServer();
    url = `http://${HOST}:${http.port}`;
    guest = await startGuest("xfer", { configure: true });
  });

  afterAll(async () => {
    try {
      await guest?.close();
    } finally {
      await Promise.allSettled([http?.close(), udp?.close(), rm(dir, { recursive: true, force: true })]);
    }
  });

  it("--configure sets address, route and resolv.conf and reports them", async () => {
    const mac = (await guest.shOk("cat /sys/class/net/eth0/address")).trim();
    expect(guest.daemon.info).toEqual({
      netns: guest.ns.name,
      ifname: "eth0",
      mac,
      gateway: "192.168.65.1",
      host: HOST,
      address: "192.168.65.3/24",
      mtu: "1500",
      subnet: "192.168.65.0/24",
      ipv6: "fdc4:f303:9324::/64",
      // Every run serves its control API: here the per-user default of its own runtime dir.
      control: expect.stringMatching(/\/desktopd\/control\.sock$/),
    });
    expect(await guest.shOk("ip -4 -o addr show dev eth0")).toContain("inet 192.168.65.3/24");
    expect(await guest.shOk("ip route show default")).toContain("default via 192.168.65.1 dev eth0");
    expect(await guest.shOk("ip -o link show lo")).toMatch(/[<,]UP[,>]/);
    const resolv = await readFile(`/etc/netns/${guest.ns.name}/resolv.conf`, "utf8");
    expect(resolv).toMatch(/^nameserver 192\.168\.65\.1$/m);
  });

  it("downloads 100 MB intact", async () => {
    const out = await guest.shOk(downloadScript(url, MB100, 11), 180_000);
    expect(out.split(" ")[0]).toBe(seededSha256(MB100, 11));
  }, 200_000);

  it("uploads 100 MB intact", async () => {
    const out = await guest.shOk(uploadScript(url, MB100, 12), 180_000);
    expect(out.trim()).toBe(`${seededSha256(MB100, 12)} ${MB100}`);
  }, 200_000);

  it(`serves ${CONCURRENT} concurrent connections`, async () => {
    const outDir = join(dir, "parallel");
    // The server holds every /hold request until all of them are open at once.
    const r = await guest.sh(
      `curl -sS --fail --max-time 90 --parallel --parallel-immediate --parallel-max ${CONCURRENT} ` +
        `--create-dirs -o ${q(`${outDir}/#1`)} ${q(`${url}/hold/[1-${CONCURRENT}]`)}`,
      120_000,
    );
    expect(r.code, `${r.stderr.slice(-2000)}\n${guest.daemon.describe()}`).toBe(0);
    expect(http.peakHeld).toBe(CONCURRENT);
    const files = await readdir(outDir);
    expect(files).toHaveLength(CONCURRENT);
    for (const name of files) {
      expect(await readFile(join(outDir, name), "utf8")).toBe(`hello ${name}\n`);
    }
  });

  it("fails fast with 'connection refused' for a closed host port", async () => {
    const port = await closedTcpPort();
    // --max-time is far above a normal refusal, so a hang fails the test (exit 28) instead.
    const r = await guest.sh(`curl -sS -v --max-time 60 ${q(`http://${HOST}:${port}/`)}`, 90_000);
    expect(r.code, r.stderr).toBe(7);
    expect(r.stderr).toMatch(/Connection refused/i);
  });

  it.each([8, 1472, 8000])("echoes a %i-byte UDP datagram", async (size) => {
    const payload = `p${size}-`.padEnd(size, "x");
    const out = await guest.shOk(
      `printf %s ${q(payload)} | socat -b 65536 -T 5 - ${q(`UDP4:${HOST}:${udp.port}`)}`,
      30_000,
    );
    expect(out).toBe(`echo:${payload}`);
    expect(udp.received.at(-1)).toMatchObject({ from: "127.0.0.1", bytes: size });
  });
});
