/** The DHCP codec: hostile messages give a WireError; emitted messages, options and search lists parse back. */
import { fuzz } from "@desktopd/fuzz";
import { describe, expect, it } from "vitest";
import {
  type DhcpReplyFields,
  decodeDomainSearch,
  emitDhcp,
  encodeDomainSearch,
  formatDhcp,
  OPT_BROADCAST,
  OPT_DNS_SERVERS,
  OPT_DOMAIN_NAME,
  OPT_DOMAIN_SEARCH,
  OPT_HOSTNAME,
  OPT_LEASE_TIME,
  OPT_MESSAGE,
  OPT_MESSAGE_TYPE,
  OPT_MTU,
  OPT_OVERLOAD,
  OPT_REBINDING_TIME,
  OPT_RENEWAL_TIME,
  OPT_ROUTER,
  OPT_SERVER_ID,
  OPT_SUBNET_MASK,
  optionIpv4List,
  optionString,
  optionU8,
  optionU16,
  optionU32,
  parameterRequestList,
  parseDhcp,
} from "../../src/wire/dhcp.js";
import { parseOrReason } from "../wire/malformed.js";
import { bytes, fc, mac, mutated, u8, u16, u32 } from "./arbitraries.js";

/** Options as they appear on the wire: TLVs (some with a wrong length), PADs, an END or none. */
const optionArea = (maxLength: number) =>
  fc
    .array(
      fc.oneof(
        fc.tuple(u8, bytes(12)).map(([code, v]) => Buffer.from([code, v.length, ...v])),
        fc
          .tuple(fc.constantFrom(53, 52, 50, 54, 12, 55, 57, 119), bytes(6))
          .map(([code, v]) => Buffer.from([code, v.length, ...v])),
        fc.constant(Buffer.of(0)),
        fc.constant(Buffer.of(255)),
        bytes(3),
      ),
      { maxLength: 12 },
    )
    .map((parts) => Buffer.concat(parts).subarray(0, maxLength));

/** A BOOTP header with the magic cookie, sname and file maybe holding overloaded options. */
const dhcpLike = fc
  .record({ header: bytes(236, 236), sname: optionArea(64), file: optionArea(128), options: optionArea(120) })
  .map(({ header, sname, file, options }) => {
    const b = Buffer.concat([header, Buffer.of(0x63, 0x82, 0x53, 0x63), options]);
    b[1] = 1;
    b[2] = 6;
    sname.copy(b, 44);
    file.copy(b, 108);
    return b;
  });

/** Every reader a consumer may call on a parsed message. */
function readAll(b: Buffer): void {
  const m = parseDhcp(b);
  formatDhcp(m);
  parameterRequestList(m);
  for (const code of m.options.keys()) {
    optionU8(m, code);
    optionU16(m, code);
    optionU32(m, code);
    optionIpv4List(m, code);
    optionString(m, code);
  }
  const search = m.options.get(OPT_DOMAIN_SEARCH);
  if (search) parseOrReason(decodeDomainSearch, search);
}

describe("parseDhcp", () => {
  it("parses arbitrary messages or throws WireError, and every option reader copes", () => {
    fuzz(
      "dhcp-codec",
      "arbitrary bytes",
      fc.oneof(bytes(300), dhcpLike, mutated(dhcpLike)),
      (b) => {
        if (parseOrReason(parseDhcp, b) === "ok") readAll(b);
      },
      1200,
    );
  });
});

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?$/);
const domain = fc
  .tuple(fc.array(label, { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([labels, dot]) => `${labels.join(".")}${dot ? "." : ""}`);
const stripDot = (d: string) => (d.endsWith(".") ? d.slice(0, -1) : d);

describe("RFC 3397 search lists", () => {
  it("decodes arbitrary bytes (compression pointers included) or throws WireError", () => {
    const pointerish = fc
      .array(fc.oneof(u8, fc.constant(0xc0), fc.constant(0), fc.integer({ min: 1, max: 5 })), {
        maxLength: 40,
      })
      .map((a) => Buffer.from(a));
    fuzz(
      "dhcp-codec",
      "search list bytes",
      fc.oneof(bytes(60), pointerish),
      (b) => {
        parseOrReason(decodeDomainSearch, b);
      },
      2000,
    );
  });

  it("decodes what it encodes", () => {
    fuzz(
      "dhcp-codec",
      "search list round trip",
      fc.array(domain, { maxLength: 6 }),
      (names) => {
        expect(decodeDomainSearch(encodeDomainSearch(names))).toEqual(names.map(stripDot));
      },
      500,
    );
  });
});

/** Codes the typed fields write; extra options use the others. */
const TYPED = new Set([
  0,
  255,
  OPT_OVERLOAD,
  OPT_MESSAGE_TYPE,
  OPT_SERVER_ID,
  OPT_LEASE_TIME,
  OPT_RENEWAL_TIME,
  OPT_REBINDING_TIME,
  OPT_SUBNET_MASK,
  OPT_BROADCAST,
  OPT_ROUTER,
  OPT_DNS_SERVERS,
  OPT_DOMAIN_NAME,
  OPT_DOMAIN_SEARCH,
  OPT_MTU,
  OPT_HOSTNAME,
  OPT_MESSAGE,
]);
const text = fc.string({ unit: "grapheme", minLength: 1, maxLength: 300 }).filter((s) => !s.endsWith("\0"));
const fields: fc.Arbitrary<DhcpReplyFields> = fc.record(
  {
    op: fc.constantFrom(1, 2),
    messageType: u8,
    xid: u32,
    secs: u16,
    broadcast: fc.boolean(),
    ciaddr: u32,
    yiaddr: u32,
    siaddr: u32,
    giaddr: u32,
    chaddr: mac,
    serverId: u32,
    leaseTimeSeconds: u32,
    renewalSeconds: u32,
    rebindingSeconds: u32,
    subnetMask: u32,
    routers: fc.array(u32, { maxLength: 3 }),
    dnsServers: fc.array(u32, { maxLength: 70 }),
    domainName: domain,
    searchDomains: fc.array(domain, { maxLength: 6 }),
    mtu: u16,
    hostname: text,
    broadcastAddress: u32,
    message: text,
    extraOptions: fc.uniqueArray(
      fc.tuple(
        u8.filter((c) => !TYPED.has(c)),
        bytes(300),
      ),
      { selector: ([code]) => code, maxLength: 4 },
    ),
  },
  { requiredKeys: ["messageType", "xid", "chaddr"] },
);

describe("emitDhcp", () => {
  it("parses back what it emits, long options split and joined again (RFC 3396)", () => {
    fuzz(
      "dhcp-codec",
      "round trip",
      fields,
      (f) => {
        const b = emitDhcp(f);
        expect(b.length).toBeGreaterThanOrEqual(300);
        const m = parseDhcp(b);
        expect(m).toMatchObject({
          op: f.op ?? 2,
          xid: f.xid,
          secs: f.secs ?? 0,
          broadcast: f.broadcast === true,
          ciaddr: f.ciaddr ?? 0,
          yiaddr: f.yiaddr ?? 0,
          siaddr: f.siaddr ?? 0,
          giaddr: f.giaddr ?? 0,
          chaddr: f.chaddr,
          messageType: f.messageType,
        });
        const domainName = stripDot(f.domainName ?? f.searchDomains?.[0] ?? "") || undefined;
        const expected = new Map<number, unknown>([
          [OPT_SERVER_ID, f.serverId],
          [OPT_LEASE_TIME, f.leaseTimeSeconds],
          [OPT_RENEWAL_TIME, f.renewalSeconds],
          [OPT_REBINDING_TIME, f.rebindingSeconds],
          [OPT_SUBNET_MASK, f.subnetMask],
          [OPT_BROADCAST, f.broadcastAddress],
        ]);
        for (const [code, v] of expected) expect(optionU32(m, code)).toBe(v);
        expect(optionIpv4List(m, OPT_ROUTER)).toEqual(f.routers?.length ? f.routers : undefined);
        expect(optionIpv4List(m, OPT_DNS_SERVERS)).toEqual(f.dnsServers?.length ? f.dnsServers : undefined);
        expect(optionString(m, OPT_DOMAIN_NAME)).toBe(domainName);
        const search = m.options.get(OPT_DOMAIN_SEARCH);
        expect(search && decodeDomainSearch(search)).toEqual(
          f.searchDomains?.length ? f.searchDomains.map(stripDot) : undefined,
        );
        expect(optionU16(m, OPT_MTU)).toBe(f.mtu);
        expect(optionString(m, OPT_HOSTNAME)).toBe(f.hostname);
        expect(optionString(m, OPT_MESSAGE)).toBe(f.message);
        for (const [code, value] of f.extraOptions ?? []) expect(m.options.get(code)).toEqual(value);
        // Nothing else: no option made up, none lost.
        const written = [
          OPT_MESSAGE_TYPE,
          ...[...expected].filter(([, v]) => v !== undefined).map(([c]) => c),
        ];
        if (f.routers?.length) written.push(OPT_ROUTER);
        if (f.dnsServers?.length) written.push(OPT_DNS_SERVERS);
        if (domainName) written.push(OPT_DOMAIN_NAME);
        if (f.searchDomains?.length) written.push(OPT_DOMAIN_SEARCH);
        if (f.mtu !== undefined) written.push(OPT_MTU);
        if (f.hostname) written.push(OPT_HOSTNAME);
        if (f.message) written.push(OPT_MESSAGE);
        written.push(...(f.extraOptions ?? []).map(([code]) => code));
        expect([...m.options.keys()].sort()).toEqual(written.sort());
      },
      500,
    );
  });
});
