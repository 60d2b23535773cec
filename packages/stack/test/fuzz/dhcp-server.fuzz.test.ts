/**
 * The DHCP server fed arbitrary client messages and clock jumps: it never throws, every reply
 * parses and fits the client's size, and no address outside the pool (but a MAC's own
 * reservation) is ever handed out, nor one address bound to two MACs.
 */

import { ManualClock } from "@desktopd/core";
import { fuzz } from "@desktopd/fuzz";
import { describe, expect, it } from "vitest";
import { DhcpServer } from "../../src/dhcp/index.js";
import { ipv4ToString } from "../../src/wire/address.js";
import {
  BOOTREPLY,
  DHCPACK,
  DHCPNAK,
  DHCPOFFER,
  type DhcpMessage,
  emitDhcp,
  maxMessageSize,
  OPT_DOMAIN_SEARCH,
  OPT_HOSTNAME,
  OPT_MAX_MESSAGE_SIZE,
  OPT_PARAMETER_LIST,
  OPT_REQUESTED_IP,
  OPT_SERVER_ID,
  parseDhcp,
  serverIdentifier,
} from "../../src/wire/dhcp.js";
import { bytes, fc, u8, u16, u32 } from "./arbitraries.js";

const NET = 0x0a000000; // 10.0.0.0/24
const SERVER = NET + 1;
const DNS = [SERVER, NET + 2];
const MACS = ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04"];

const hostIp = fc.integer({ min: 1, max: 254 }).map((n) => NET + n);
/**
 * Addresses a client may name: mostly in (or just past) the pool, which depends on the
 * configuration (so kept as an index), else ours, the network's edges, other networks.
 */
type Ip = { pool: number } | { ip: number };
const anyIp: fc.Arbitrary<Ip> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ pool: fc.integer({ min: 0, max: 7 }) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      ip: fc.oneof(hostIp, fc.constantFrom(0, NET, NET + 255, SERVER, 0xffffffff), u32),
    }),
  },
);
/** An option's value as a client may send it: right, or of the wrong length. */
const ipOption = fc.oneof(anyIp, bytes(6));

const config = fc
  .record({
    first: fc.integer({ min: 2, max: 250 }),
    size: fc.integer({ min: 1, max: 6 }),
    reserved: fc.array(hostIp, { maxLength: 2 }),
    statics: fc.uniqueArray(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 3, max: 254 })), {
      selector: ([m]) => m,
      maxLength: 2,
    }),
    leaseTimeSeconds: fc.integer({ min: 60, max: 7200 }),
    declineHoldSeconds: fc.integer({ min: 0, max: 900 }),
  })
  .filter(({ statics }) => new Set(statics.map(([, ip]) => ip)).size === statics.length);

const message = fc.record(
  {
    op: fc.oneof({ weight: 9, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: u8 }),
    type: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(1, 1, 3, 3, 3, 4, 7, 8) },
      { weight: 1, arbitrary: u8 },
      { weight: 1, arbitrary: fc.constant(undefined) },
    ),
    mac: fc.oneof(
      { weight: 9, arbitrary: fc.constantFrom(...MACS) },
      { weight: 1, arbitrary: fc.constant("02:aa:bb:cc:dd:ee") },
    ),
    xid: u32,
    ciaddr: fc.oneof({ weight: 3, arbitrary: fc.constant({ ip: 0 }) }, { weight: 1, arbitrary: anyIp }),
    giaddr: fc.oneof({ weight: 9, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: u32 }),
    broadcast: fc.boolean(),
    requested: fc.option(ipOption, { freq: 4, nil: undefined }),
    serverId: fc.option(
      fc.oneof({ weight: 3, arbitrary: fc.constant({ ip: SERVER }) }, { weight: 1, arbitrary: ipOption }),
      { nil: undefined },
    ),
    hostname: fc.oneof(fc.string({ maxLength: 20 }), fc.string({ minLength: 200, maxLength: 900 })),
    parameters: fc.array(fc.oneof(u8, fc.constant(OPT_DOMAIN_SEARCH)), { maxLength: 8 }),
    maxSize: u16,
  },
  { requiredKeys: ["op", "type", "mac", "xid", "ciaddr", "giaddr", "broadcast", "requested", "serverId"] },
);
type Message = typeof message extends fc.Arbitrary<infer T> ? T : never;

function build(m: Message, poolStart: number): DhcpMessage {
  const ip = (v: Ip) => ("pool" in v ? poolStart + v.pool : v.ip) >>> 0;
  const option = (v: Ip | Buffer) => {
    if (Buffer.isBuffer(v)) return v;
    const b = Buffer.alloc(4);
    b.writeUInt32BE(ip(v));
    return b;
  };
  const extraOptions: [number, Buffer][] = [];
  if (m.requested) extraOptions.push([OPT_REQUESTED_IP, option(m.requested)]);
  if (m.serverId) extraOptions.push([OPT_SERVER_ID, option(m.serverId)]);
  if (m.hostname !== undefined) extraOptions.push([OPT_HOSTNAME, Buffer.from(m.hostname)]);
  if (m.parameters) extraOptions.push([OPT_PARAMETER_LIST, Buffer.from(m.parameters)]);
  if (m.maxSize !== undefined)
    extraOptions.push([OPT_MAX_MESSAGE_SIZE, Buffer.of(m.maxSize >> 8, m.maxSize & 0xff)]);
  const b = emitDhcp({
    op: m.op,
    messageType: m.type ?? 0,
    xid: m.xid,
    ciaddr: ip(m.ciaddr),
    giaddr: m.giaddr,
    broadcast: m.broadcast,
    chaddr: Buffer.from(m.mac.replaceAll(":", ""), "hex"),
    extraOptions,
  });
  // Plain BOOTP: the message type option (first, 3 bytes) becomes PADs.
  if (m.type === undefined) b.fill(0, 240, 243);
  return parseDhcp(b);
}

const step = fc.oneof(
  { weight: 6, arbitrary: message.map((m) => ({ kind: "message" as const, m })) },
  { weight: 1, arbitrary: fc.nat(8_000_000).map((ms) => ({ kind: "advance" as const, ms })) },
);

describe("DhcpServer.handle", () => {
  it("answers arbitrary client messages with parseable replies, within the pool, one MAC per address", () => {
    fuzz(
      "dhcp-server",
      "arbitrary messages",
      fc.record({ config, steps: fc.array(step, { maxLength: 40 }) }),
      ({ config: c, steps }) => {
        const clock = new ManualClock(1000);
        const poolStart = NET + c.first;
        const poolEnd = Math.min(poolStart + c.size - 1, NET + 254);
        const statics = c.statics.map(([m, n]) => ({ mac: MACS[m]!, ip: NET + n }));
        const server = new DhcpServer({
          serverIp: SERVER,
          subnetMask: 0xffffff00,
          router: SERVER,
          dnsServers: DNS,
          searchDomains: ["home.arpa", "example.test"],
          mtu: 1400,
          poolStart,
          poolEnd,
          reserved: c.reserved,
          leaseTimeSeconds: c.leaseTimeSeconds,
          declineHoldSeconds: c.declineHoldSeconds,
          staticLeases: statics,
          clock,
        });
        const excluded = new Set([SERVER, ...DNS, ...c.reserved]);
        /** What `mac` may be given: a free pool address, or its own reservation. */
        const allowed = (mac: string, ip: number) => {
          const own = statics.find((s) => s.mac === mac);
          if (own) return ip === own.ip;
          return ip >= poolStart && ip <= poolEnd && !excluded.has(ip) && !statics.some((s) => s.ip === ip);
        };
        for (const s of steps) {
          if (s.kind === "advance") {
            clock.advance(s.ms);
            continue;
          }
          const msg = build(s.m, poolStart);
          const reply = server.handle(msg);
          if (reply) {
            const r = parseDhcp(reply.message);
            expect(r).toMatchObject({ op: BOOTREPLY, xid: s.m.xid });
            expect(r.chaddr.equals(msg.chaddr)).toBe(true);
            expect([DHCPOFFER, DHCPACK, DHCPNAK]).toContain(r.messageType);
            expect(serverIdentifier(r)).toBe(SERVER);
            // RFC 2131: never larger than the client said it takes (and 576 it always takes).
            expect(reply.message.length).toBeLessThanOrEqual(Math.max(576, maxMessageSize(msg) ?? 0) - 28);
            if (r.messageType !== DHCPNAK && r.yiaddr !== 0) expect(allowed(s.m.mac, r.yiaddr)).toBe(true);
            if (!reply.broadcast) expect(reply.dstIp).toBe(msg.ciaddr);
          }
          const leases = server.leases();
          expect(new Set(leases.map((l) => l.ip)).size).toBe(leases.length);
          expect(new Set(leases.map((l) => l.mac)).size).toBe(leases.length);
          for (const l of leases)
            expect(allowed(l.mac, l.ip), `${l.mac} holds ${ipv4ToString(l.ip)}`).toBe(true);
        }
      },
      500,
    );
  });
});
