/** Ethernet and ARP: hostile bytes give a WireError or in-bounds views; emitted frames parse back. */
import { fuzz } from "@desktopd/fuzz";
import { describe, expect, it } from "vitest";
import { ARP_LEN, emitArp, formatArp, parseArp } from "../../src/wire/arp.js";
import {
  ETH_HEADER_LEN,
  ETHERTYPE_VLAN,
  emitEthernetHeader,
  formatEthernet,
  parseEthernet,
} from "../../src/wire/ethernet.js";
import { parseOrReason } from "../wire/malformed.js";
import { bytes, fc, mac, mutated, u16, u32 } from "./arbitraries.js";

describe("ethernet", () => {
  it("parses arbitrary bytes or throws WireError", () => {
    fuzz(
      "ethernet",
      "arbitrary bytes",
      fc.oneof(bytes(40), mutated(bytes(24, 18))),
      (b) => {
        if (parseOrReason(parseEthernet, b) === "ok") formatEthernet(parseEthernet(b));
      },
      2000,
    );
  });

  it("parses back what it emits", () => {
    const frame = fc.record({
      dst: mac,
      src: mac,
      ethertype: fc.integer({ min: 0x600, max: 0xffff }).filter((t) => t !== ETHERTYPE_VLAN),
      payload: bytes(64),
    });
    fuzz(
      "ethernet",
      "round trip",
      frame,
      (f) => {
        const buf = Buffer.alloc(ETH_HEADER_LEN + f.payload.length);
        expect(emitEthernetHeader(buf, 0, f.dst, f.src, f.ethertype)).toBe(ETH_HEADER_LEN);
        f.payload.copy(buf, ETH_HEADER_LEN);
        expect(parseEthernet(buf)).toEqual({ ...f, vlan: undefined });
      },
      500,
    );
  });
});

describe("arp", () => {
  it("parses arbitrary bytes or throws WireError", () => {
    const arpLike = bytes(ARP_LEN, ARP_LEN).map((b) => {
      // Ethernet/IPv4 header fields, so that most inputs reach the field reads.
      b.writeUInt32BE(0x00010800, 0);
      b.writeUInt16BE(0x0604, 4);
      return b;
    });
    fuzz(
      "arp",
      "arbitrary bytes",
      fc.oneof(bytes(40), mutated(arpLike)),
      (b) => {
        if (parseOrReason(parseArp, b) === "ok") formatArp(parseArp(b));
      },
      2000,
    );
  });

  it("parses back what it emits, ignoring Ethernet padding", () => {
    const packet = fc.record({ op: u16, senderMac: mac, senderIp: u32, targetMac: mac, targetIp: u32 });
    fuzz(
      "arp",
      "round trip",
      fc.tuple(packet, bytes(18)),
      ([p, padding]) => {
        const buf = Buffer.concat([Buffer.alloc(ARP_LEN), padding]);
        expect(emitArp(buf, 0, p)).toBe(ARP_LEN);
        expect(parseArp(buf)).toEqual(p);
      },
      500,
    );
  });
});
