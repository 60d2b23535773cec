/**
 * Egress defaults and rules, UDP NAT timeouts and filtering, fragment expiry and keepalive, all
 * through the stack frame by frame on a manual clock. Host peers are real sockets on 127.0.0.1.
 */
import dgram from "node:dgram";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import net from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseEgressRule } from "../../src/egress.js";
import { ConfigError } from "../../src/errors.js";
import {
  expectFrame,
  type FrameHarness,
  frameHarness,
  ICMPv4,
  TCP,
} from "../../src/testing/frame-harness.js";
import { Flags } from "../../src/testing/tcp-harness.js";
import { TCP_ACK, TCP_RST, TCP_SYN } from "../../src/wire/tcp.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

let server: net.Server;
let port: number;
beforeAll(async () => {
  server = net.createServer((s) => s.on("error", () => {}));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  port = (server.address() as net.AddressInfo).port;
});
afterAll(() => server.close());

/** The guest's SYN to dst:port and what the stack answers once the host side settled. */
async function syn(harness: FrameHarness, dst: string, dstPort = port, srcPort = 45000) {
  harness.guest(A.mac, A.ip).tcp({ dst, srcPort, dstPort, flags: TCP_SYN, seq: 1 });
  // The host connect is a real one: give it a moment.
  for (let i = 0; i < 50 && harness.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  await harness.settle();
  return harness.take()[0];
}

describe("egress defaults", () => {
  it("the host address reaches the host's loopback", async () => {
    h = frameHarness();
    expectFrame(await syn(h, h.config.hostAddress), TCP(Flags(TCP_SYN | TCP_ACK)));
  });

  it("127.0.0.0/8, 0.0.0.0 and the guest subnet are refused with RST, counted by reason", async () => {
    h = frameHarness();
    for (const [dst, by] of [
      ["127.0.0.1", "loopback"],
      ["127.0.0.53", "loopback"],
      ["0.0.0.0", "loopback"],
      ["192.168.65.77", "subnet"],
    ] as const) {
      expectFrame(await syn(h, dst), TCP(Flags(TCP_RST | TCP_ACK)));
      expect(h.stack.counters().egress.deniedBy[by]).toBeGreaterThan(0);
    }
    expect(h.stack.counters().drops["tcp-egress-denied"]).toBe(4);
  });

  it("hostLoopback: false turns the host address off", async () => {
    h = frameHarness({ egress: { hostLoopback: false } });
    expectFrame(await syn(h, h.config.hostAddress), TCP(Flags(TCP_RST | TCP_ACK)));
    expect(h.stack.counters().egress.deniedBy["host-loopback-off"]).toBe(1);
  });

  it("UDP to a refused destination gets ICMP administratively prohibited", async () => {
    h = frameHarness();
    h.guest(A.mac, A.ip).udp("127.0.0.53", 40000, 53, Buffer.from("q"));
    await h.settle();
    expectFrame(h.take()[0], ICMPv4(3, 13));
    expect(h.stack.counters().drops["udp-egress-denied"]).toBe(1);
    // Refused before any host socket was opened for it.
    expect(h.stack.counters().udp.opened).toBe(0);
  });
});

describe("egress rules", () => {
  it("first match wins: an allow rule opens one loopback port, the rest stays closed", async () => {
    h = frameHarness({ egress: { rules: [`allow tcp 127.0.0.1:${port}`, "deny *"] } });
    expectFrame(await syn(h, "127.0.0.1"), TCP(Flags(TCP_SYN | TCP_ACK)));
    expectFrame(
      await syn(h, "127.0.0.1", port + 1 > 65535 ? port - 1 : port + 1, 45001),
      TCP(Flags(TCP_RST | TCP_ACK)),
    );
    expectFrame(await syn(h, h.config.hostAddress, port, 45002), TCP(Flags(TCP_RST | TCP_ACK)));
    const rules = h.stack.egress.rules();
    expect(rules.map((r) => r.matched)).toEqual([1, 2]);
  });

  it("rules by name match the names the DNS answered that guest with", async () => {
    const asked: string[] = [];
    h = frameHarness({
      egress: {
        rules: ["allow .local.test", "deny *"],
        namesFor: (guest, dst) => {
          asked.push(`${guest}>${dst}`);
          return dst === "127.0.0.1" ? ["api.local.test"] : [];
        },
      },
    });
    expectFrame(await syn(h, "127.0.0.1"), TCP(Flags(TCP_SYN | TCP_ACK)));
    expectFrame(await syn(h, "127.0.0.2", port, 45001), TCP(Flags(TCP_RST | TCP_ACK)));
    expect(asked).toEqual(["192.168.65.3>127.0.0.1", "192.168.65.3>127.0.0.2"]);
  });

  it("rules change at run time: add at a position, remove by id", async () => {
    h = frameHarness();
    const deny = h.stack.egress.add("deny tcp 192.168.65.254");
    expectFrame(await syn(h, h.config.hostAddress), TCP(Flags(TCP_RST | TCP_ACK)));
    expect(h.stack.egress.remove(deny.id)).toBe(true);
    expectFrame(await syn(h, h.config.hostAddress, port, 45001), TCP(Flags(TCP_SYN | TCP_ACK)));
    expect(h.stack.egress.rules()).toEqual([]);
  });

  it("a bad rule is a ConfigError and leaves the rules as they were", () => {
    h = frameHarness({ egress: { rules: ["deny 10.0.0.0/8"] } });
    for (const bad of [
      "block 1.2.3.4",
      "deny 10.0.0.0/33",
      "deny 1.2.3.4:0",
      "deny 1.2.3.4:9-3",
      "deny a..b",
      "deny",
    ]) {
      expect(() => h!.stack.egress.add(bad), bad).toThrow(ConfigError);
    }
    expect(() => h!.stack.egress.replace(["allow *", "nope"])).toThrow(ConfigError);
    expect(h.stack.egress.rules().map((r) => r.to)).toEqual(["10.0.0.0/8"]);
  });

  it("parses every spelling of the rule syntax", () => {
    expect(parseEgressRule("deny 10.0.0.0/8")).toEqual({ action: "deny", to: "10.0.0.0/8" });
    expect(parseEgressRule("allow tcp *.corp.example:443")).toEqual({
      action: "allow",
      protocol: "tcp",
      to: "*.corp.example",
      ports: "443",
    });
    expect(parseEgressRule("deny udp *:5000-5100")).toEqual({
      action: "deny",
      protocol: "udp",
      to: "*",
      ports: "5000-5100",
    });
  });
});

describe("UDP NAT", () => {
  let echo: dgram.Socket;
  let echoPort: number;
  beforeAll(async () => {
    echo = dgram.createSocket("udp4");
    echo.on("message", (m, r) => echo.send(m, r.port, r.address));
    echo.bind(0, "127.0.0.1");
    await once(echo, "listening");
    echoPort = echo.address().port;
  });
  afterAll(() => echo.close());

  const reply = async (harness: FrameHarness) => {
    for (let i = 0; i < 100 && harness.seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    return harness.take();
  };

  it("a flow that saw only the guest's side closes after 120 s; one that saw replies after 180 s", async () => {
    h = frameHarness();
    const g = h.guest(A.mac, A.ip);
    // To a port nobody answers: one direction only.
    const quiet = dgram.createSocket("udp4");
    quiet.bind(0, "127.0.0.1");
    await once(quiet, "listening");
    g.udp(h.config.hostAddress, 50001, quiet.address().port, Buffer.from("x"));
    g.udp(h.config.hostAddress, 50002, echoPort, Buffer.from("y"));
    expect((await reply(h)).length).toBe(1);
    expect(h.stack.counters().udp.open).toBe(2);
    await h.advance(119_000);
    expect(h.stack.counters().udp.open).toBe(2);
    await h.advance(11_000);
    expect(h.stack.counters().udp.open).toBe(1);
    await h.advance(50_000);
    expect(h.stack.counters().udp.open).toBe(0);
    quiet.close();
  });

  it("passes on replies only from remotes the guest sent to (address-and-port-dependent filtering)", async () => {
    h = frameHarness();
    const g = h.guest(A.mac, A.ip);
    const seenBy: number[] = [];
    const spy = dgram.createSocket("udp4");
    spy.on("message", (_m, r) => seenBy.push(r.port));
    spy.bind(0, "127.0.0.1");
    await once(spy, "listening");
    g.udp(h.config.hostAddress, 50003, spy.address().port, Buffer.from("hello"));
    for (let i = 0; i < 100 && seenBy.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    const mapped = seenBy[0]!;
    // A stranger sends to the NAT's host port: dropped, counted.
    const stranger = dgram.createSocket("udp4");
    stranger.send("intruder", mapped, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 100));
    await h.settle();
    expect(h.take()).toHaveLength(0);
    expect(h.stack.counters().udp.unsolicited).toBe(1);
    // The remote the guest talked to gets through.
    spy.send("answer", mapped, "127.0.0.1");
    const got = await reply(h);
    expect(got[0]?.udp?.payload.toString()).toBe("answer");
    stranger.close();
    spy.close();
  });
});

describe("timers through the stack", () => {
  it("fragments that never complete are dropped after 30 s, without another fragment", async () => {
    h = frameHarness();
    h.guest(A.mac, A.ip).ipPacket(h.config.hostAddress, {
      id: 7,
      moreFragments: true,
      payload: Buffer.alloc(64),
    });
    await h.settle();
    await h.advance(30_001);
    expect(h.stack.counters().drops["reassembly-timeout"]).toBe(1);
  });

  it("an idle guest connection is probed after guestKeepAliveMs and reset when the guest is gone", async () => {
    const handed: unknown[] = [];
    h = frameHarness({
      tcp: { guestKeepAliveMs: 60_000, guestKeepAliveIntervalMs: 10_000 },
      policy: { tcp: () => ({ action: "handle", handler: (s) => handed.push(s.on("error", () => {})) }) },
    });
    const g = h.guest(A.mac, A.ip);
    g.tcp({ dst: h.config.gateway, srcPort: 46000, dstPort: 7, flags: TCP_SYN, seq: 1 });
    await h.settle();
    const synAck = h.take()[0]!.tcp!;
    g.tcp({ dst: h.config.gateway, srcPort: 46000, dstPort: 7, flags: TCP_ACK, seq: 2, ack: synAck.seq + 1 });
    await h.settle();
    expect(handed).toHaveLength(1);
    // Timers fire a millisecond after their deadline (lazily armed, never early).
    await h.advance(60_001);
    expectFrame(h.take()[0], TCP(Flags(TCP_ACK, true)));
    await h.advance(9 * 10_000 + 100);
    const last = h.take().at(-1);
    expectFrame(last, TCP(Flags(TCP_RST | TCP_ACK, true)));
    expect(h.stack.counters().tcp.timedOut).toBe(1);
  });
});

describe("host keepalive", () => {
  /** Timer kinds (/proc/net/tcp "tr": 2 is keepalive) of our established sockets to the server. */
  function hostSocketTimers(): string[] {
    const server = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
    return readFileSync("/proc/net/tcp", "utf8")
      .split("\n")
      .slice(1)
      .map((line) => line.trim().split(/\s+/))
      .filter((f) => f[2] === server && f[3] === "01")
      .map((f) => f[5]!.split(":")[0]!);
  }

  it("is switched on for a NAT flow's host socket once it has lived a second, not at once", async () => {
    h = frameHarness({ tcp: { hostKeepAliveMs: 60_000 } });
    expectFrame(await syn(h, h.config.hostAddress, port, 45100), TCP(Flags(TCP_SYN | TCP_ACK)));
    const before = hostSocketTimers();
    expect(before.length).toBeGreaterThan(0);
    expect(before).not.toContain("02");
    await h.advance(1_100);
    expect(hostSocketTimers()).toContain("02");
  });
});

describe("ARP resolution on the manual clock", () => {
  it("asks every 100 ms and gives up after 3 s with DialError 'unreachable'", async () => {
    h = frameHarness();
    const dial = h.stack.connect("192.168.65.9", 22).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    await h.advance(2_900);
    const asked = h.seen.filter((f) => f.arp?.op === 1).length;
    expect(asked).toBeGreaterThanOrEqual(29);
    await h.advance(200);
    const error = await dial;
    expect(error?.message).toBe("no guest answers ARP for 192.168.65.9");
  });

  it("finishes as soon as the guest answers", async () => {
    h = frameHarness();
    const g = h.guest(A.mac, A.ip);
    const dial = h.stack.connect(A.ip, 22);
    await h.advance(250);
    g.ping(h.config.gateway); // any frame from the guest teaches the stack its MAC
    await h.settle();
    await h.advance(100);
    const syn = h.take().find((f) => f.tcp?.flags === TCP_SYN);
    expect(syn?.tcp?.dstPort).toBe(22);
    g.tcp({
      dst: h.config.hostAddress,
      srcPort: 22,
      dstPort: syn!.tcp!.srcPort,
      flags: TCP_RST | TCP_ACK,
      ack: syn!.tcp!.seq + 1,
    });
    await expect(dial).rejects.toThrow("refused");
  });
});

describe("refusal logs", () => {
  it("are at most 10 lines per 10 s, TCP and UDP together; the next says how many were held back", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = {
      debug() {},
      info: (o: object, msg?: string) => {
        if (msg === "egress refused") lines.push(o as Record<string, unknown>);
      },
      warn() {},
      error() {},
      child() {
        return logger;
      },
    };
    h = frameHarness({ logger });
    const g = h.guest(A.mac, A.ip);
    for (let i = 0; i < 8; i++) g.tcp({ dst: "127.0.0.1", srcPort: 47000 + i, dstPort: 80, flags: TCP_SYN });
    for (let i = 0; i < 8; i++) g.udp("127.0.0.53", 48000 + i, 53, Buffer.from("q"));
    await h.settle();
    expect(lines).toHaveLength(10);
    expect(lines[0]).toMatchObject({
      protocol: "tcp",
      guest: `${A.ip}:47000`,
      dst: "127.0.0.1:80",
      by: "loopback",
    });
    expect(lines[9]).toMatchObject({ protocol: "udp", dst: "127.0.0.53:53" });
    await h.advance(10_000);
    g.tcp({ dst: "127.0.0.1", srcPort: 47100, dstPort: 80, flags: TCP_SYN });
    await h.settle();
    expect(lines[10]).toMatchObject({ protocol: "tcp", suppressed: 6 });
    expect(h.stack.counters().egress.denied).toBe(17);
  });
});
