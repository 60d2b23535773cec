/**
 * Every captured frame, and seeded corruptions of it, decoded the way the stack will:
 * Ethernet → ARP | IPv4 → (reassembly) → ICMP | UDP | TCP. Hostile bytes may only ever
 * produce a WireError.
 */

import { ManualClock, SeededRandom } from "@desktopd/core";
import { describe, expect, it } from "vitest";
import { formatArp, parseArp } from "../../src/wire/arp.js";
import { ETHERTYPE_ARP, ETHERTYPE_IPV4, formatEthernet, parseEthernet } from "../../src/wire/ethernet.js";
import { formatIcmpv4, parseIcmpv4 } from "../../src/wire/icmpv4.js";
import {
  formatIpv4,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  type Ipv4Packet,
  parseIpv4,
} from "../../src/wire/ipv4.js";
import { Ipv4Reassembler } from "../../src/wire/reassembly.js";
import { formatTcp, parseTcp } from "../../src/wire/tcp.js";
import { formatUdp, parseUdp } from "../../src/wire/udp.js";
import * as fragments from "../fixtures/fragments.js";
import * as frames from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import * as tcp from "../fixtures/tcp.js";
import { mutations, parseOrReason, randomBuffers } from "./malformed.js";

/** Decodes one frame to a tcpdump-like line; undefined for a fragment still being reassembled. */
function decode(frame: Buffer, reassembler: Ipv4Reassembler): string | undefined {
  const eth = parseEthernet(frame);
  if (eth.ethertype === ETHERTYPE_ARP) return formatArp(parseArp(eth.payload));
  if (eth.ethertype !== ETHERTYPE_IPV4) return formatEthernet(eth);
  let ip: Ipv4Packet | undefined = parseIpv4(eth.payload);
  ip = reassembler.push(ip);
  if (ip === undefined) return undefined;
  const prefix = formatIpv4(ip);
  switch (ip.protocol) {
    case IPPROTO_ICMP:
      return `${prefix} ${formatIcmpv4(parseIcmpv4(ip.payload))}`;
    case IPPROTO_UDP:
      return `${prefix} ${formatUdp(parseUdp(ip.payload, ip.src, ip.dst))}`;
    case IPPROTO_TCP:
      return `${prefix} ${formatTcp(parseTcp(ip.payload, ip.src, ip.dst))}`;
    default:
      return prefix;
  }
}

const captured: [string, string][] = [
  ...Object.entries(frames),
  ...Object.entries(tcp),
  ...Object.entries(fragments),
].filter((entry): entry is [string, string] => typeof entry[1] === "string");

describe("decoding captured frames end to end", () => {
  it.each(captured)("decodes %s", (_name, hexFrame) => {
    const r = new Ipv4Reassembler({ clock: new ManualClock() });
    expect(() => decode(bytes(hexFrame), r)).not.toThrow();
  });

  it("prints the whole capture in order", () => {
    const r = new Ipv4Reassembler({ clock: new ManualClock() });
    const lines = [
      frames.arpRequest,
      frames.arpReply,
      frames.icmpEchoRequest,
      fragments.udpFragment2,
      fragments.udpFragment0,
      fragments.udpFragment1,
      tcp.tcpSyn,
    ].map((f) => decode(bytes(f), r));
    expect(lines).toEqual([
      "ARP who-has 10.99.0.2 tell 10.99.0.1 (02:00:00:00:00:0a)",
      "ARP reply 10.99.0.2 is-at 02:00:00:00:00:0b to 10.99.0.1 (02:00:00:00:00:0a)",
      "IPv4 10.99.0.1 > 10.99.0.2 proto=1 ttl=64 id=17636 len=60 ICMP echo request id=5858 seq=0 len=32",
      undefined,
      undefined,
      "IPv4 10.99.0.1 > 10.99.0.2 proto=17 ttl=64 id=46026 len=1228 UDP 40005 > 7 len=1200",
      "IPv4 10.99.0.1 > 10.99.0.2 proto=6 ttl=64 id=61188 len=60 TCP 40002 > 8080 [S] seq=3130452186 ack=0 win=64240 len=0 <mss 1460,wscale 10,sackOK,TS 3728613835:0>",
    ]);
  });

  it("throws only WireError for seeded corruptions of every captured frame", () => {
    const clock = new ManualClock();
    const r = new Ipv4Reassembler({ clock, maxDatagrams: 8 });
    const random = new SeededRandom(51);
    const reasons = new Set<string>();
    for (const [, hexFrame] of captured) {
      const frame = bytes(hexFrame);
      for (const b of mutations(random.u32(), 100, frame)) reasons.add(parseOrReason((x) => decode(x, r), b));
      // A few bytes cut off the end, and a few random bytes added.
      for (let n = 1; n <= 8 && n < frame.length; n++) {
        reasons.add(parseOrReason((x) => decode(x, r), frame.subarray(0, frame.length - n)));
      }
      clock.advance(1000);
      r.expire();
    }
    for (const b of randomBuffers(52, 2000, 80)) reasons.add(parseOrReason((x) => decode(x, r), b));
    expect(r.pending).toBeLessThanOrEqual(8);
    // The corruptions reach every layer's checks, not just the first one.
    for (const reason of ["truncated", "checksum", "bad-total-length", "bad-length", "bad-header-length"]) {
      expect(reasons).toContain(reason);
    }
  });
});
