/**
 * The compliance suite every `Dialer` runs: a stream to an echo target carries data both ways
 * and half-closes; a refused target rejects; a UDP channel, when offered, round-trips datagrams.
 */
import { describe, expect, it } from "vitest";
import type { Dialer } from "../dialer.js";

export interface DialerUnderTest {
  dialer: Dialer;
  /** An address where a TCP server echoes every byte, and on `udpEchoPort` a UDP one each datagram. */
  ip: string;
  echoPort: number;
  udpEchoPort?: number;
  /** A port at `ip` where nothing listens. */
  closedPort: number;
  close(): Promise<void>;
}

export function dialerCompliance(name: string, open: () => Promise<DialerUnderTest>): void {
  describe(`Dialer compliance: ${name}`, () => {
    it("a stream carries bytes both ways and half-closes", async () => {
      const t = await open();
      try {
        const stream = await t.dialer.connect(t.ip, t.echoPort);
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        const ended = new Promise<void>((resolve, reject) => {
          stream.once("end", resolve);
          stream.once("error", reject);
        });
        const payload = Buffer.alloc(256 * 1024, 7);
        stream.end(payload);
        await ended;
        expect(Buffer.concat(chunks).equals(payload)).toBe(true);
        stream.destroy();
      } finally {
        await t.close();
      }
    });

    it("rejects for a target that refuses", async () => {
      const t = await open();
      try {
        await expect(t.dialer.connect(t.ip, t.closedPort)).rejects.toThrow();
      } finally {
        await t.close();
      }
    });

    it("round-trips datagrams when it offers UDP", async () => {
      const t = await open();
      try {
        if (!t.dialer.dialUdp || t.udpEchoPort === undefined) return;
        const channel = await t.dialer.dialUdp(t.ip, t.udpEchoPort);
        const got = new Promise<Buffer>((resolve) => channel.onMessage(resolve));
        channel.send(Buffer.from("ping"));
        expect((await got).toString()).toContain("ping");
        channel.close();
      } finally {
        await t.close();
      }
    });
  });
}
