import { readFileSync } from "node:fs";
import net from "node:net";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import {
  type AutoForwardEvent,
  AutoForwardRuleError,
  compileAutoForwardRule,
  createAutoForwarder,
  createForwarder,
  createSocketDialer,
  decideAutoForward,
  formatAutoForwardRule,
  type Listener,
  parseAutoForwardRule,
  parseReport,
} from "../src/index.js";

const FUZZ = Number(process.env.FUZZ_SCALE ?? 1);
// Captured with `ip netns exec`: servers on 0.0.0.0:3000, [::]:8443, 127.0.0.1:9000, 10.9.0.2:7000,
// [::1]:7001, UDP 0.0.0.0:5353, [::]:5354, 127.0.0.1:5355, and one connection and one connected
// UDP socket that are not listeners.
const REPORT = readFileSync(new URL("fixtures/report-netns.txt", import.meta.url), "utf8");

describe("parseReport", () => {
  it("finds the listeners of real tables, and only them", () => {
    const { listeners, skipped } = parseReport(REPORT);
    expect(skipped).toBe(0);
    const show = (l: Listener) =>
      `${l.protocol}${l.family} ${l.address.includes(":") ? `[${l.address}]` : l.address}:${l.port}`;
    expect(listeners.map(show).sort()).toEqual(
      [
        "tcp4 0.0.0.0:3000",
        "tcp4 127.0.0.1:9000",
        "tcp4 10.9.0.2:7000",
        "tcp6 [::]:8443",
        "tcp6 [::1]:7001",
        "udp4 0.0.0.0:5353",
        "udp4 127.0.0.1:5355",
        "udp6 [::]:5354",
      ].sort(),
    );
  });

  it("skips and counts lines that do not parse; never throws", () => {
    const r = parseReport(
      "@tcp\n  sl local\n   0: ZZZZ:1 00000000:0000 0A\nnonsense line here x\n@bogus\nline\n@end",
    );
    expect(r.listeners).toEqual([]);
    expect(r.skipped).toBe(3);
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        const r = parseReport(`@tcp\n${text}`);
        expect(r.skipped).toBeGreaterThanOrEqual(0);
      }),
      { numRuns: 2000 * FUZZ },
    );
  });
});

describe("rules", () => {
  const l = (port: number, address = "0.0.0.0", protocol: "tcp" | "udp" = "tcp"): Listener => ({
    protocol,
    family: address.includes(":") ? 6 : 4,
    address,
    port,
  });
  const rules = [
    "ignore 22",
    "ignore guest 192.168.65.9",
    "forward tcp 3000-3999 to +10000",
    "forward 8080 to 0.0.0.0:80",
    "forward udp 5000-5009 to 127.0.0.1:6000",
  ].map((t) => compileAutoForwardRule(parseAutoForwardRule(t)));
  const decide = (listener: Listener, guest = "192.168.65.3") => decideAutoForward(listener, guest, rules);

  it("parses, formats and applies them in order, first match wins", () => {
    expect(parseAutoForwardRule("forward tcp 3000-3999 to [::1]:+10")).toEqual({
      action: "forward",
      protocol: "tcp",
      ports: "3000-3999",
      hostIp: "::1",
      hostPort: "+10",
    });
    expect(
      formatAutoForwardRule(parseAutoForwardRule("forward udp 53 guest 192.168.65.4 to 127.0.0.2:5353")),
    ).toBe("forward udp 53 guest 192.168.65.4 to 127.0.0.2:5353");
    expect(decide(l(22))).toMatchObject({ publish: false, reason: "ignored", rule: 0 });
    expect(decide(l(8000), "192.168.65.9")).toMatchObject({ publish: false, reason: "ignored", rule: 1 });
    expect(decide(l(3001))).toEqual({ publish: true, hostIp: "127.0.0.1", hostPort: 13001, rule: 2 });
    expect(decide(l(8080))).toEqual({ publish: true, hostIp: "0.0.0.0", hostPort: 80, rule: 3 });
    expect(decide(l(5003, "0.0.0.0", "udp"))).toEqual({
      publish: true,
      hostIp: "127.0.0.1",
      hostPort: 6003,
      rule: 4,
    });
    expect(decide(l(9999))).toEqual({ publish: true, hostIp: "127.0.0.1", hostPort: 9999 });
  });

  it("skips what the host cannot reach: guest loopback, another address, IPv6-only", () => {
    expect(decide(l(9000, "127.0.0.1"))).toMatchObject({ reason: "guest-loopback" });
    expect(decide(l(7001, "::1"))).toMatchObject({ reason: "guest-loopback" });
    expect(decide(l(7000, "10.9.0.2"))).toMatchObject({ reason: "other-address" });
    expect(decide(l(7000, "192.168.65.3"))).toMatchObject({ publish: true, hostPort: 7000 });
    expect(decide(l(8443, "::"))).toMatchObject({ publish: true, hostPort: 8443 });
    expect(decide(l(8443, "fd00::3"))).toMatchObject({ reason: "ipv6-only" });
  });

  it("forwards a listener on one of the guest's own IPv6 addresses to that address", () => {
    const six = ["fdc4:f303:9324::3"];
    expect(decideAutoForward(l(8443, "fdc4:f303:9324::3"), "192.168.65.3", rules, six)).toEqual({
      publish: true,
      hostIp: "127.0.0.1",
      hostPort: 8443,
      target: "fdc4:f303:9324::3",
    });
    // Another guest's address (or one the network never saw this guest use) is not forwarded.
    expect(decideAutoForward(l(8443, "fdc4:f303:9324::9"), "192.168.65.3", rules, six)).toMatchObject({
      reason: "ipv6-only",
    });
  });

  it("refuses bad rules, naming them", () => {
    for (const bad of [
      "drop 22",
      "forward 0",
      "forward 10-5",
      "ignore 22 to 80",
      "forward to 80",
      "forward 1 guest x",
    ]) {
      expect(() => parseAutoForwardRule(bad)).toThrow(AutoForwardRuleError);
    }
    expect(() => parseAutoForwardRule("forward 80 to 1.2.3:80")).toThrow(/"1.2.3" is not an address/);
  });
});

describe("createAutoForwarder", () => {
  const forwarder = createForwarder({ dialer: createSocketDialer() });
  afterEach(async () => {
    for (const f of forwarder.list()) await forwarder.remove(f.id);
  });

  async function freePort(): Promise<number> {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const { port } = s.address() as net.AddressInfo;
    await new Promise((r) => s.close(r));
    return port;
  }

  it("publishes new listeners, unpublishes closed ones, waits for a taken port, and yields to -p", async () => {
    const events: AutoForwardEvent[] = [];
    const auto = createAutoForwarder({ forwarder, rules: () => [], onEvent: (e) => events.push(e) });
    const [a, b] = [await freePort(), await freePort()];
    const tcp = (port: number): Listener => ({ protocol: "tcp", family: 4, address: "0.0.0.0", port });
    await auto.update("127.0.0.1", [tcp(a)]);
    expect(forwarder.list().map((f) => [f.id, f.label])).toEqual([[`tcp/127.0.0.1:${a}`, "auto"]]);
    // Port b is taken on the host: reported once, retried at each report, published once free.
    const holder = net.createServer();
    await new Promise<void>((r) => holder.listen(b, "127.0.0.1", r));
    await auto.update("127.0.0.1", [tcp(a), tcp(b)]);
    await auto.update("127.0.0.1", [tcp(a), tcp(b)]);
    expect(events.filter((e) => e.type === "autoforward-failed")).toHaveLength(1);
    expect(auto.list().find((e) => e.hostPort === b)).toMatchObject({ state: "waiting" });
    await new Promise((r) => holder.close(r));
    await auto.update("127.0.0.1", [tcp(a), tcp(b)]);
    expect(auto.list().find((e) => e.hostPort === b)).toMatchObject({ state: "published" });
    // a closes in the guest.
    await auto.update("127.0.0.1", [tcp(b)]);
    expect(forwarder.list().map((f) => f.id)).toEqual([`tcp/127.0.0.1:${b}`]);
    // An explicit publish of b wins; the automatic one does not come back while it is there.
    await auto.yieldTo("tcp", "127.0.0.1", b);
    await forwarder.add(`127.0.0.1:${b}:${b}`, { target: "127.0.0.1" });
    await auto.update("127.0.0.1", [tcp(b)]);
    expect(forwarder.list().map((f) => [f.id, f.label])).toEqual([[`tcp/127.0.0.1:${b}`, undefined]]);
    expect(auto.list()[0]).toMatchObject({ state: "explicit" });
    await auto.forget("127.0.0.1");
    expect(auto.list()).toEqual([]);
    await auto.close();
  });

  it("caps the number of automatic forwards and says so once", async () => {
    const events: AutoForwardEvent[] = [];
    const auto = createAutoForwarder({
      forwarder,
      rules: () => [],
      maxForwards: 2,
      onEvent: (e) => events.push(e),
    });
    const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
    const report = ports.map((port): Listener => ({ protocol: "tcp", family: 4, address: "0.0.0.0", port }));
    await auto.update("127.0.0.1", report);
    await auto.update("127.0.0.1", report);
    expect(forwarder.list()).toHaveLength(2);
    expect(events.filter((e) => e.type === "autoforward-cap")).toHaveLength(1);
    expect(auto.counters().skipped.cap).toBe(4);
    await auto.close();
    expect(forwarder.list()).toHaveLength(0);
  });
});
