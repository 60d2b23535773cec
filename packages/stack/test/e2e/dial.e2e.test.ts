/**
 * Dialling into a Linux guest: the stack is the TCP client (and the UDP peer) on the virtual
 * network, from the host address — the building block of port forwarding.
 */
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { DialError } from "@desktopd/stack";
import { haveRootAndNetns, type StackGuest, startStackGuest, waitForListener } from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const env = haveRootAndNetns();

describe.skipIf(!env.ok)("dialling into the guest", () => {
  let guest: StackGuest;

  beforeAll(async () => {
    guest = await startStackGuest({ prefix: "dial" });
    guest.ns.spawn("socat", ["TCP-LISTEN:7000,reuseaddr,fork", "EXEC:cat"]);
    guest.ns.spawn("socat", ["UDP-RECVFROM:7001,fork", "EXEC:cat"]);
    await waitForListener(guest.ns, "t", 7000);
    await waitForListener(guest.ns, "u", 7001);
  });

  afterAll(async () => {
    await guest?.close();
  });

  it("echoes 4 MB through a TCP connection the stack opened into the guest", async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const conn = await guest.stack.connect("192.168.65.3", 7000);
    const received: Buffer[] = [];
    conn.on("data", (chunk: Buffer) => received.push(chunk));
    conn.end(data);
    await once(conn, "end");
    const got = Buffer.concat(received);
    expect(got.length).toBe(data.length);
    expect(createHash("sha256").update(got).digest("hex")).toBe(
      createHash("sha256").update(data).digest("hex"),
    );
  });

  it("rejects with DialError 'refused' when nothing listens in the guest", async () => {
    const err = await guest.stack.connect("192.168.65.3", 7999).catch((e: unknown) => e);
    expect(DialError.isInstance(err)).toBe(true);
    expect((err as DialError).reason).toBe("refused");
  });

  it("rejects with DialError 'unreachable' for an address no guest answers", async () => {
    const err = await guest.stack
      .connect("192.168.65.77", 7000, { timeoutMs: 1000 })
      .catch((e: unknown) => e);
    expect(DialError.isInstance(err)).toBe(true);
    expect((err as DialError).reason).toBe("unreachable");
  });

  it("exchanges datagrams with a UDP server in the guest", async () => {
    const sock = await guest.stack.dialUdp("192.168.65.3", 7001);
    try {
      const reply = new Promise<Buffer>((resolve) => sock.onMessage(resolve));
      sock.send(Buffer.from("ping over udp"));
      expect((await reply).toString()).toBe("ping over udp");
    } finally {
      sock.close();
    }
  });
});
