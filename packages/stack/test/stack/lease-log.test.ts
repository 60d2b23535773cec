/** One info line per new DHCP lease, renewals at debug only: what a person reads in the daemon's log. */
import type { Logger } from "@desktopd/core";
import { afterEach, describe, expect, it } from "vitest";
import { type FrameHarness, frameHarness } from "../../src/testing/frame-harness.js";

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function capture(): { logger: Logger; lines: [string, string, object][] } {
  const lines: [string, string, object][] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push([level, msg ?? "", obj]);
  const logger: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => logger,
  };
  return { logger, lines };
}

describe("lease log", () => {
  it("logs a new lease at info with its address, MAC and host name, and renewals at debug", async () => {
    const { logger, lines } = capture();
    h = frameHarness({ logger });
    const guest = h.guest("02:00:00:00:00:0b", "0.0.0.0");
    guest.dhcp(1);
    await h.settle();
    const offered = h.take().find((f) => f.dhcp)!.dhcp!;
    const ip = offered.yiaddr;
    const ipText = [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join(".");
    guest.dhcp(3, { requested: ipText, serverId: h.config.gateway });
    await h.settle();
    guest.dhcp(3, { requested: ipText, serverId: h.config.gateway });
    await h.settle();
    const leaseLines = lines.filter(([, msg]) => msg.startsWith("dhcp lease"));
    expect(leaseLines).toEqual([
      ["info", "dhcp lease", { ip: ipText, mac: "02:00:00:00:00:0b", hostname: undefined }],
      ["debug", "dhcp lease renewed", { ip: ipText, mac: "02:00:00:00:00:0b", hostname: undefined }],
    ]);
  });
});
