/**
 * `stack.flows()`: every open flow with its endpoints, direction, state, service, bytes, age and
 * idle time, frame by frame on a manual clock. Host peers are real sockets on 127.0.0.1.
 */
import dgram from "node:dgram";
import { once } from "node:events";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type FrameHarness, frameHarness } from "../../src/testing/frame-harness.js";
import { TCP_ACK, TCP_SYN } from "../../src/wire/tcp.js";

const A = { mac: "02:00:00:00:00:0a", ip: "192.168.65.3" };

let h: FrameHarness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

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

describe("stack.flows()", () => {
  it("lists a policy-served TCP flow with the policy's service name, its age and idle time", async () => {
    h = frameHarness({
      policy: {
        tcp: (f) =>
          f.dstPort === 7 ? { action: "handle", service: "echo", handler: (s) => s.pipe(s) } : undefined,
      },
    });
    const guest = h.guest(A.mac, A.ip);
    guest.tcp({ dst: h.config.gateway, srcPort: 40000, dstPort: 7, flags: TCP_SYN, seq: 1000 });
    await h.settle();
    const synAck = h.take(A.ip).find((f) => f.tcp)!.tcp!;
    expect(h.stack.flows()).toEqual([
      {
        protocol: "tcp",
        guest: `${A.ip}:40000`,
        remote: `${h.config.gateway}:7`,
        direction: "outbound",
        state: "SYN-RECEIVED",
        service: "echo",
        bytesFromGuest: 0,
        bytesToGuest: 0,
        ageMs: 0,
        idleMs: 0,
      },
    ]);
    h.clock.advance(2500);
    expect(h.stack.flows()[0]).toMatchObject({ ageMs: 2500, idleMs: 2500 });

    guest.tcp({
      dst: h.config.gateway,
      srcPort: 40000,
      dstPort: 7,
      flags: TCP_ACK,
      seq: 1001,
      ack: synAck.seq + 1,
      payload: Buffer.from("hello"),
    });
    await h.settle();
    expect(h.stack.flows()[0]).toMatchObject({
      state: "ESTABLISHED",
      ageMs: 2500,
      idleMs: 0,
      bytesFromGuest: 5,
      bytesToGuest: 5,
    });
  });

  it("lists a UDP NAT flow with its remote and the bytes each way, and counts retransmits of open connections", async () => {
    h = frameHarness();
    const guest = h.guest(A.mac, A.ip);
    guest.udp(h.config.hostAddress, 5353, echoPort, Buffer.from("ping!"));
    await h.settle();
    for (let i = 0; i < 50 && (h.stack.flows()[0]?.bytesToGuest ?? 0) === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      await h.settle();
    }
    h.clock.advance(1000);
    expect(h.stack.flows()).toEqual([
      {
        protocol: "udp",
        guest: `${A.ip}:5353`,
        remote: `127.0.0.1:${echoPort}`,
        direction: "outbound",
        state: "REPLIED",
        service: "nat",
        bytesFromGuest: 5,
        bytesToGuest: 5,
        ageMs: 1000,
        idleMs: 1000,
      },
    ]);
  });

  it("counts SYN-ACK retransmissions while the connection is still open", async () => {
    h = frameHarness({
      policy: { tcp: () => ({ action: "handle", handler: () => {} }) },
    });
    const guest = h.guest(A.mac, A.ip);
    guest.tcp({ dst: h.config.gateway, srcPort: 40001, dstPort: 9, flags: TCP_SYN, seq: 1 });
    await h.settle();
    expect(h.stack.counters().tcp.timeouts).toBe(0);
    // The guest never answers the SYN-ACK: it is sent again after the retransmission timeout.
    await h.advance(3500);
    expect(h.stack.flows()).toHaveLength(1);
    expect(h.stack.flows()[0]!.service).toBe("handler");
    expect(h.stack.counters().tcp.timeouts).toBeGreaterThan(0);
  });
});
