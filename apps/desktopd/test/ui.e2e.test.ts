/// <reference lib="dom" />
/**
 * The daemon as a person meets it, with a netns guest: the status page in real headless Chromium
 * (Debian's, driven by puppeteer-core) — 401 without its token, the guest's link and lease with
 * it, a port published with the CLI appearing without a reload — plus flows, the DNS log and
 * Prometheus metrics scraped and parsed while the guest makes traffic. A screenshot of the page
 * is saved under apps/desktopd/test-output/.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  bootVm,
  consoleReport,
  haveRootAndNetns,
  skipBecause,
  type TestVm,
  vmUnavailableReason,
} from "@desktopd/stack/testing";
import puppeteer, { type Browser } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_PATH } from "./support/daemon.js";
import { type Guest, startGuest } from "./support/guest.js";
import { parseExposition, sumOf } from "./support/prometheus.js";

const CHROMIUM = "/usr/bin/chromium";
const env = haveRootAndNetns();
const noBrowser =
  env.ok &&
  skipBecause(existsSync(CHROMIUM) ? undefined : `${CHROMIUM} is missing (apt-get install chromium)`);
const noVm = env.ok && skipBecause(vmUnavailableReason());
const run = promisify(execFile);
const OUTPUT = new URL("../test-output/", import.meta.url);

describe.skipIf(!env.ok || noBrowser || noVm)(
  "status page, flows and metrics of a daemon with a netns guest and a VM",
  () => {
    const dir = mkdtempSync(join(tmpdir(), "dtd-ui-"));
    let vm: TestVm | undefined;
    let guest: Guest;
    let browser: Browser;
    let web: Server;
    let webPort: number;
    let pageUrl: string;
    let control: string;

    beforeAll(async () => {
      web = createServer((_req, res) => res.end("hello from the host\n"));
      await new Promise<void>((r) => web.listen(0, "127.0.0.1", r));
      webPort = (web.address() as { port: number }).port;
      guest = await startGuest("dtd-ui", {
        configure: true,
        args: [
          "--ui",
          "127.0.0.1:0",
          "--metrics",
          "127.0.0.1:0",
          "--dns-upstream",
          "127.0.0.1:9",
          "--qemu-socket",
          join(dir, "vm.sock"),
        ],
      });
      control = guest.daemon.info.control!;
      pageUrl = /^Status page: (\S+)$/m.exec(guest.daemon.stdout())?.[1] ?? "";
      browser = await puppeteer.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--disable-dev-shm-usage",
        ],
      });
    });

    afterAll(async () => {
      await vm?.close();
      rmSync(dir, { recursive: true, force: true });
      await browser?.close();
      await guest?.close();
      web?.close();
    });

    it("prints the page's URL with a token, not in the ready line", () => {
      expect(pageUrl, guest.daemon.stdout()).toMatch(
        /^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{43}$/,
      );
      const readyLine = guest.daemon
        .stdout()
        .split("\n")
        .find((l) => l.startsWith("desktopd ready"));
      expect(readyLine).not.toContain("token");
    });

    it("lists the guest's flows and DNS queries, and counts them in the metrics", async () => {
      // A DHCP exchange (its script does nothing: the address stays as --configure set it), a lookup
      // through the gateway's DNS and a long-lived connection to the host's loopback.
      await guest.shOk("busybox udhcpc -i eth0 -n -q -t 3 -x hostname:uitest -s /bin/true");
      // IPv4 only: with IPv6 on, a plain lookup may be answered by the AAAA record alone.
      await guest.shOk("getent ahostsv4 host.docker.internal");
      await guest.shOk(`(exec 3<>/dev/tcp/192.168.65.254/${webPort}; sleep 5) >/dev/null 2>&1 &`);
      let flows: { protocol: string; remote: string; service: string; state: string; direction: string }[] =
        [];
      for (let i = 0; i < 50 && !flows.some((f) => f.remote.endsWith(`:${webPort}`)); i++) {
        flows = JSON.parse(
          (await run(process.execPath, [CLI_PATH, "flows", "--json", "--control", control])).stdout,
        );
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(flows.find((f) => f.remote === `192.168.65.254:${webPort}`)).toMatchObject({
        protocol: "tcp",
        service: "nat",
        state: "ESTABLISHED",
        direction: "outbound",
      });
      const table = (await run(process.execPath, [CLI_PATH, "flows", "--control", control])).stdout;
      expect(table).toMatch(/^PROTO +FLOW +STATE +SERVICE/);
      expect(table).toContain(`192.168.65.254:${webPort}`);

      const log = (await run(process.execPath, [CLI_PATH, "dns", "log", "--control", control])).stdout;
      expect(log).toContain("host.docker.internal A → A 192.168.65.254");

      const metrics = parseExposition(await (await fetch(guest.daemon.info.metrics!)).text());
      expect(sumOf(metrics, "desktopd_dns_queries_total", { layer: "fixed" })).toBeGreaterThan(0);
      expect(sumOf(metrics, "desktopd_flows_opened_total", { protocol: "tcp" })).toBeGreaterThan(0);
      expect(sumOf(metrics, "desktopd_link_received_bytes_total")).toBeGreaterThan(0);
    });

    it("serves a qemu VM beside the namespace: its link, lease, DNS and flows show in status and metrics", async () => {
      vm = await bootVm({
        name: "ui",
        netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${join(dir, "vm.sock")}`,
      });
      try {
        await vm.sh("udhcpc -i eth0 -q -n -t 10 -x hostname:uivm", 60_000);
        expect(await vm.sh("nslookup host.docker.internal 192.168.65.1")).toContain("192.168.65.254");
        expect(await vm.sh(`wget -q -O- http://192.168.65.254:${webPort}/`)).toContain("hello from the host");
      } catch (error) {
        process.stderr.write(`${consoleReport([vm])}\n`);
        throw error;
      }
      const status = JSON.parse(
        (await run(process.execPath, [CLI_PATH, "status", "--json", "--control", control])).stdout,
      );
      expect(status.links.map((l: { name: string }) => l.name.split(":")[0]).sort()).toEqual(["qemu", "tap"]);
      expect(status.leases.map((l: { hostname?: string }) => l.hostname)).toContain("uivm");
      const metrics = parseExposition(await (await fetch(guest.daemon.info.metrics!)).text());
      const qemuLink = status.links.find((l: { name: string }) => l.name.startsWith("qemu"))!.name as string;
      expect(sumOf(metrics, "desktopd_link_received_bytes_total", { link: qemuLink })).toBeGreaterThan(0);
    });

    it("serves the page in Chromium with the token and not without, kept live from the events", async () => {
      const page = await browser.newPage();
      try {
        const base = pageUrl.slice(0, pageUrl.indexOf("?"));
        const refused = await page.goto(base, { waitUntil: "load" });
        expect(refused?.status()).toBe(401);

        await page.goto(pageUrl, { waitUntil: "load" });
        // The token went into a cookie and out of the address bar.
        expect(page.url()).toBe(base);
        await page.waitForFunction(() => document.querySelector("#live")?.textContent === "live", {
          timeout: 15_000,
        });
        await page.waitForFunction(
          (ns: string) => document.querySelector("#links tbody")?.textContent?.includes(ns),
          { timeout: 15_000 },
          guest.ns.name,
        );
        const leases = await page.$eval("#leases tbody", (el) => el.textContent ?? "");
        expect(leases).toContain("192.168.65.3");
        expect(leases).toContain("uitest");
        expect(leases).toContain("uivm");
        expect(await page.$eval("#links tbody", (el) => el.textContent ?? "")).toContain("qemu:");
        expect(await page.$eval("#counters", (el) => el.textContent ?? "")).toContain("192.168.65.1:3128");

        await run(process.execPath, [CLI_PATH, "publish", "add", "127.0.0.1:0:8080", "--control", control]);
        const id = JSON.parse(
          (await run(process.execPath, [CLI_PATH, "publish", "ls", "--json", "--control", control])).stdout,
        )[0].id as string;
        // No reload: the publish-added event brings it (the poll alone would take up to 2 s more).
        await page.waitForFunction(
          (text: string) => document.querySelector("#published tbody")?.textContent?.includes(text),
          { timeout: 10_000 },
          id,
        );

        mkdirSync(OUTPUT, { recursive: true });
        const shot = new URL("ui.png", OUTPUT).pathname;
        await page.screenshot({ path: shot, fullPage: true });
        process.stderr.write(`status page screenshot: ${shot}\n`);
        expect(existsSync(shot)).toBe(true);
      } finally {
        await page.close();
      }
    });
  },
);
