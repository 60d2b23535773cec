import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TransportError } from "../../src/errors.js";
import { createNetns, haveRootAndNetns, type Netns } from "../../src/testing/netns.js";
import { openTap, type TapTransport } from "../../src/transport/tap.js";
import { parseIpv4Address, parseMac } from "../../src/wire/address.js";
import { checksum } from "../../src/wire/checksum.js";

const env = haveRootAndNetns();

// The address and MAC our side of the link claims; the guest is 10.99.0.2.
const HOST_MAC = parseMac("02:dd:00:00:00:01")!;
const HOST_IP = parseIpv4Address("10.99.0.1")!;
const GUEST_IP = parseIpv4Address("10.99.0.2")!;
const GUEST_MAC = "02:dd:00:00:00:02";

/** Collects received frames and lets a test wait for the first one matching a predicate. */
class Inbox {
  readonly frames: Buffer[] = [];
  private waiters: { match: (f: Buffer) => boolean; resolve: (f: Buffer) => void }[] = [];
  closedWith: { error?: Error } | undefined;

  push(frame: Buffer): void {
    this.frames.push(frame);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(frame)) return true;
      w.resolve(frame);
      return false;
    });
  }

  /** Resolves with the first frame (already received or future) that matches. */
  next(match: (f: Buffer) => boolean, what: string, timeoutMs = 10_000): Promise<Buffer> {
    const seen = this.frames.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
      });
    });
  }
}

function isArpRequestFor(frame: Buffer, targetIp: number, fromMac: string): boolean {
  return (
    frame.length >= 42 &&
    frame.readUInt16BE(12) === 0x0806 &&
    frame.readUInt16BE(20) === 1 &&
    frame.subarray(6, 12).equals(parseMac(fromMac)!) &&
    frame.readUInt32BE(38) === targetIp
  );
}

function arpReply(requesterMac: Buffer, requesterIp: number): Buffer {
  const f = Buffer.alloc(42);
  requesterMac.copy(f, 0);
  HOST_MAC.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16); // IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(2, 20); // reply
  HOST_MAC.copy(f, 22);
  f.writeUInt32BE(HOST_IP, 28);
  requesterMac.copy(f, 32);
  f.writeUInt32BE(requesterIp, 38);
  return f;
}

function isIcmpEchoRequest(frame: Buffer, dstIp: number): boolean {
  return (
    frame.length >= 42 &&
    frame.readUInt16BE(12) === 0x0800 &&
    frame[23] === 1 &&
    frame.readUInt32BE(30) === dstIp &&
    frame[14 + (frame[14]! & 0x0f) * 4] === 8
  );
}

/** Turns a received echo request into the matching echo reply (swapped addresses, type 0). */
function echoReplyFor(request: Buffer): Buffer {
  const f = Buffer.from(request);
  f.copy(f, 0, 6, 12);
  HOST_MAC.copy(f, 6);
  const ihl = (f[14]! & 0x0f) * 4;
  const src = f.readUInt32BE(26);
  f.writeUInt32BE(f.readUInt32BE(30), 26);
  f.writeUInt32BE(src, 30);
  f.writeUInt16BE(0, 24);
  f.writeUInt16BE(checksum(f, 14, 14 + ihl), 24);
  const icmp = 14 + ihl;
  const end = 14 + f.readUInt16BE(16);
  f[icmp] = 0;
  f.writeUInt16BE(0, icmp + 2);
  f.writeUInt16BE(checksum(f, icmp, end), icmp + 2);
  return f;
}

async function linkJson(ns: Netns, ifname: string): Promise<Record<string, unknown> | undefined> {
  const r = await ns.exec("ip", ["-j", "link", "show", "dev", ifname]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as Record<string, unknown>[])[0];
}

describe.skipIf(!env.ok)(`TAP transport (needs root, netns and /dev/net/tun: ${env.reason ?? "ok"})`, () => {
  let ns: Netns;
  let tap: TapTransport;
  const inbox = new Inbox();

  beforeAll(async () => {
    ns = await createNetns("tap");
    tap = await openTap({ netns: ns.name, mtu: 1400, mac: GUEST_MAC });
    tap.start({
      onFrame: (f) => inbox.push(f),
      onClose: (error) => {
        inbox.closedWith = { error };
      },
    });
  });

  afterAll(async () => {
    await tap?.close();
    await ns?.remove();
  });

  it("applies name, MTU, MAC and up state inside the namespace", async () => {
    expect(tap.ifname).toBe("eth0");
    expect(tap.netns).toBe(ns.name);
    expect(tap.guestMac).toBe(GUEST_MAC);
    expect(tap.mtu).toBe(1400);
    const link = await linkJson(ns, "eth0");
    expect(link).toBeDefined();
    expect(link!.mtu).toBe(1400);
    expect(link!.address).toBe(GUEST_MAC);
    expect(link!.flags).toContain("UP");
  });

  it("carries ARP and ICMP both ways with the guest kernel", async () => {
    const add = await ns.exec("ip", ["addr", "add", "10.99.0.2/24", "dev", "eth0"]);
    expect(add.code, add.stderr).toBe(0);
    const ping = ns.exec("busybox", ["ping", "-c", "1", "-W", "5", "10.99.0.1"], { timeoutMs: 20_000 });

    const request = await inbox.next(
      (f) => isArpRequestFor(f, HOST_IP, GUEST_MAC),
      "ARP request for 10.99.0.1",
    );
    expect(request.readUInt32BE(28)).toBe(GUEST_IP);
    tap.send(arpReply(request.subarray(6, 12), GUEST_IP));

    // The queued echo request can only leave once the kernel accepted our ARP reply.
    const echo = await inbox.next((f) => isIcmpEchoRequest(f, HOST_IP), "ICMP echo request");
    expect(echo.subarray(0, 6).equals(HOST_MAC)).toBe(true);
    expect(echo.readUInt32BE(26)).toBe(GUEST_IP);
    tap.send(echoReplyFor(echo));

    const result = await ping;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/1 packets received/);
    expect(tap.stats.framesOut).toBeGreaterThanOrEqual(2);
    expect(tap.stats.framesIn).toBeGreaterThanOrEqual(2);
  });

  it("delivers every read of a burst as exactly one frame", async () => {
    // A static neighbour entry lets the guest send without waiting for ARP.
    await ns.exec("ip", ["neigh", "replace", "10.99.0.1", "lladdr", "02:dd:00:00:00:01", "dev", "eth0"]);
    const before = inbox.frames.length;
    // 2000 UDP datagrams of 100 bytes, as fast as socat can write them.
    const burst = await ns.exec("socat", [
      "-u",
      "-b",
      "100",
      "OPEN:/dev/zero,readbytes=200000",
      "UDP-SENDTO:10.99.0.1:9",
    ]);
    expect(burst.code, burst.stderr).toBe(0);
    const isBurstFrame = (f: Buffer) =>
      f.readUInt16BE(12) === 0x0800 && f[23] === 17 && f.readUInt16BE(14 + 20 + 2) === 9;
    // The TAP queue is FIFO: once a marker sent after the burst arrives, the burst has been read
    // (the kernel may have dropped some of it when its queue was full, which is fine here).
    const marker = await ns.exec("socat", ["-u", "STDIN", "UDP-SENDTO:10.99.0.1:10"], { input: "end" });
    expect(marker.code, marker.stderr).toBe(0);
    await inbox.next(
      (f) => f.readUInt16BE(12) === 0x0800 && f[23] === 17 && f.readUInt16BE(14 + 20 + 2) === 10,
      "marker datagram",
    );
    const frames = inbox.frames.slice(before).filter(isBurstFrame);
    expect(frames.length).toBeGreaterThan(100);
    for (const f of frames) {
      // Two frames glued together or one split would break this equality.
      expect(f.length).toBe(14 + f.readUInt16BE(16));
      expect(f.readUInt16BE(14 + 20 + 4)).toBe(8 + 100);
    }
  });

  it("with offload, lends frames to a receiver that accepts loans and gives one that does not its own", async () => {
    const got: Record<string, { frame: Buffer; text: string; lent: boolean }[]> = { lend: [], own: [] };
    const taps: TapTransport[] = [];
    try {
      for (const [name, net, acceptsLent] of [
        ["lend", "10.97.0", true],
        ["own", "10.96.0", false],
      ] as const) {
        const t = await openTap({ netns: ns.name, ifname: `${name}0`, offload: true });
        taps.push(t);
        t.start({
          onFrame: (frame, meta) => {
            if (frame.readUInt16BE(12) !== 0x0800 || frame[23] !== 17) return;
            const text = frame.subarray(14 + 20 + 8).toString();
            got[name]!.push({ frame, text, lent: meta?.lent === true });
          },
          ...(acceptsLent && { acceptsLent: true }),
        });
        await ns.exec("ip", ["addr", "add", `${net}.2/24`, "dev", `${name}0`]);
        await ns.exec("ip", [
          "neigh",
          "replace",
          `${net}.1`,
          "lladdr",
          "02:dd:00:00:00:09",
          "dev",
          `${name}0`,
        ]);
        for (const text of ["one", "two", "three"]) {
          const sent = await ns.exec("socat", ["-u", "STDIN", `UDP-SENDTO:${net}.1:9`], { input: text });
          expect(sent.code, sent.stderr).toBe(0);
        }
      }
      for (let i = 0; i < 100 && (got.lend!.length < 3 || got.own!.length < 3); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      // What each receiver saw during its call.
      expect(got.lend!.map((g) => g.text)).toEqual(["one", "two", "three"]);
      expect(got.own!.map((g) => g.text)).toEqual(["one", "two", "three"]);
      // Lent: one memory for all, marked as a loan. Given: a buffer each, still intact afterwards.
      expect(got.lend!.every((g) => g.lent)).toBe(true);
      expect(new Set(got.lend!.map((g) => g.frame.buffer)).size).toBe(1);
      expect(new Set(got.lend!.map((g) => g.frame.byteOffset)).size).toBe(1);
      expect(got.own!.some((g) => g.lent)).toBe(false);
      expect(got.own!.map((g) => g.frame.subarray(14 + 20 + 8).toString())).toEqual(["one", "two", "three"]);
    } finally {
      for (const t of taps) await t.close();
    }
  });

  it("drops frames larger than the MTU and counts them", () => {
    const before = tap.stats.drops.oversize ?? 0;
    const outBefore = tap.stats.framesOut;
    tap.send(Buffer.alloc(1400 + 14 + 4 + 1));
    expect(tap.stats.drops.oversize).toBe(before + 1);
    expect(tap.stats.framesOut).toBe(outBefore);
    // A VLAN-tagged full-size frame still fits.
    const full = Buffer.alloc(1400 + 18);
    full.writeUInt16BE(0x8100, 12);
    tap.send(full);
    expect(tap.stats.framesOut).toBe(outBefore + 1);
  });

  it("rejects a missing namespace and an existing interface name with a TransportError", async () => {
    const missing = openTap({ netns: `dtd-missing-${process.pid}` });
    await expect(missing).rejects.toSatisfy((e: unknown) => TransportError.isInstance(e));
    await expect(missing).rejects.toThrow(/does not exist/);
    const taken = openTap({ netns: ns.name, ifname: "eth0" });
    await expect(taken).rejects.toSatisfy((e: unknown) => TransportError.isInstance(e));
    await expect(taken).rejects.toThrow(/already exists/);
  });

  it("close() removes the device, notifies the receiver and is idempotent", async () => {
    const second = await openTap({ netns: ns.name, ifname: "tap1", up: false });
    let closed = 0;
    second.start({ onFrame: () => {}, onClose: () => closed++ });
    const link = await linkJson(ns, "tap1");
    expect(link).toBeDefined();
    expect(link!.flags).not.toContain("UP");
    await second.close();
    await second.close();
    expect(closed).toBe(1);
    expect(await linkJson(ns, "tap1")).toBeUndefined();
    second.send(Buffer.alloc(60));
    expect(second.stats.drops.closed).toBe(1);
  });
  it("reports the device gone when its namespace is deleted", async () => {
    const doomed = await createNetns("tapgone");
    const gone = await openTap({ netns: doomed.name });
    try {
      const closed = new Promise<Error | undefined>((resolve) =>
        gone.start({ onFrame: () => {}, onClose: (error) => resolve(error) }),
      );
      await doomed.remove();
      const error = await closed;
      expect(TransportError.isInstance(error)).toBe(true);
      expect(error?.message).toMatch(/device was removed/);
      gone.send(Buffer.alloc(60));
      expect(gone.stats.drops["link-down"]).toBe(1);
    } finally {
      await gone.close();
      await doomed.remove();
    }
  });
});
