import { ManualClock } from "@desktopd/core";
import { describe, expect, it } from "vitest";
import { checksum } from "../../src/wire/checksum.js";
import { parseEthernet } from "../../src/wire/ethernet.js";
import { parseIcmpv4 } from "../../src/wire/icmpv4.js";
import { icmpQuote, parseIpv4 } from "../../src/wire/ipv4.js";
import { Ipv4Reassembler } from "../../src/wire/reassembly.js";
import { udpFragment0, udpFragment1, udpFragment2 } from "../fixtures/fragments.js";
import { icmpPortUnreachable, udpToClosedPort } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";

const ip = (frame: string) => parseIpv4(parseEthernet(bytes(frame)).payload);

describe("icmpQuote", () => {
  it("quotes a datagram as Linux does: header and the first 8 payload bytes", () => {
    const linuxQuote = parseIcmpv4(ip(icmpPortUnreachable).payload).payload;
    expect(icmpQuote(ip(udpToClosedPort))).toEqual(linuxQuote.subarray(0, 28));
  });

  it("quotes a reassembled datagram from its fields, not from memory before its payload", () => {
    const r = new Ipv4Reassembler({ clock: new ManualClock() });
    const whole = [udpFragment0, udpFragment1, udpFragment2].map((f) => r.push(ip(f))).find(Boolean)!;
    const quote = icmpQuote(whole);
    // The quoted header states the whole datagram's length, so it is read field by field.
    expect(quote.readUInt32BE(12)).toBe(whole.src);
    expect(quote.readUInt32BE(16)).toBe(whole.dst);
    expect(quote[9]).toBe(17);
    expect(quote.readUInt16BE(2)).toBe(whole.totalLength);
    expect(checksum(quote, 0, 20)).toBe(0);
    expect(quote.subarray(20)).toEqual(whole.payload.subarray(0, 8));
  });
});
