/**
 * A guest SYN whose host connect is still pending, then the guest's RST: the pending entry must
 * be freed (no leaked slot, no absorbed SYNs for that 4-tuple afterwards) and nothing answered.
 * The host side is a real listener whose accept queue is full, so the kernel leaves connects hanging.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import type { FrameTransport } from "@desktopd/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tcpFrame } from "../../src/iface/frames.js";
import { createStack, type Stack } from "../../src/stack.js";
import { createTransportPair } from "../../src/testing/pair.js";
import { parseIpv4Address, parseMac } from "../../src/wire/address.js";
import { TCP_RST, TCP_SYN } from "../../src/wire/tcp.js";

const GUEST_MAC = parseMac("02:00:00:00:00:03")!;
const GUEST_IP = parseIpv4Address("192.168.65.3")!;
const HOST_IP = parseIpv4Address("192.168.65.254")!;
const tick = () => new Promise((r) => setTimeout(r, 50));

describe("a host connect pending when the guest resets", () => {
  let listener: ChildProcess;
  let port: number;
  const fillers: net.Socket[] = [];
  let stack: Stack;
  let guest: FrameTransport;
  const received: Buffer[] = [];

  beforeAll(async () => {
    // listen(0) and never accept: once the accept queue holds one connection, SYNs are dropped.
    listener = spawn("python3", [
      "-c",
      "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(120)",
    ]);
    const [line] = (await once(listener.stdout!, "data")) as [Buffer];
    port = Number(line.toString().trim());
    for (let i = 0; i < 3; i++) fillers.push(net.connect(port, "127.0.0.1").on("error", () => {}));
    await tick();
    const [stackSide, guestSide] = createTransportPair();
    stack = createStack();
    stack.attach(stackSide);
    guest = guestSide;
    guest.start({ onFrame: (f) => received.push(f) });
  });

  afterAll(async () => {
    for (const s of fillers) s.destroy();
    listener?.kill();
    await stack?.close();
  });

  const segment = (flags: number, seq: number) =>
    tcpFrame(
      { srcMac: GUEST_MAC, dstMac: parseMac(stack.config.gatewayMac)!, srcIp: GUEST_IP, dstIp: HOST_IP },
      {
        srcPort: 40000,
        dstPort: port,
        seq,
        ack: 0,
        flags,
        window: 64240,
        mss: flags & TCP_SYN ? 1460 : undefined,
      },
      undefined,
    );

  it("frees the pending entry and answers nothing", async () => {
    guest.send(segment(TCP_SYN, 1000));
    await tick();
    expect(stack.counters().tcp.pendingConnects).toBe(1);
    guest.send(segment(TCP_RST, 1001));
    await tick();
    const c = stack.counters();
    expect(c.tcp.pendingConnects).toBe(0);
    expect(c.tcp.open).toBe(0);
    expect(received).toEqual([]);
  });

  it("treats a later SYN on the same ports as a new connection", async () => {
    guest.send(segment(TCP_SYN, 5000));
    await tick();
    expect(stack.counters().tcp.pendingConnects).toBe(1);
  });
});
