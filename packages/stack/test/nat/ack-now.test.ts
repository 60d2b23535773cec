/**
 * ackNow against the real kernel: a receiver that has stopped reading holds back its ACK, and
 * ackNow lets it go at once instead of after the delayed-ACK timer (40 ms or more).
 */
import { once } from "node:events";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ackNow, prepareAckNow } from "../../src/nat/ack-now.js";
import { tcpInfo } from "./tcp-info.js";

/**
 * More than one loopback segment (64 KiB) per write: Linux acknowledges early, as ackNow asks,
 * only once more than a segment has arrived since its last ACK.
 */
const WRITE = 70_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A loopback pair whose receiving end never reads. */
async function pausedPair(): Promise<{ sender: net.Socket; receiver: net.Socket }> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "connection");
  const receiver = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
  // Paused before the connect completes, so Node never starts reading it.
  receiver.pause();
  await once(receiver, "connect");
  const [sender] = (await accepted) as [net.Socket];
  cleanups.push(() => {
    sender.destroy();
    receiver.destroy();
    server.close();
  });
  return { sender, receiver };
}

/**
 * Writes, one at a time, until one is still unacknowledged 2 ms later: the receiver's first ACKs
 * are immediate (Linux's quick-ACK start); once unread data shrinks its window, they wait for a
 * read or a timer.
 */
async function untilAckHeld(sender: net.Socket): Promise<boolean> {
  for (let i = 0; i < 64; i++) {
    sender.write(Buffer.alloc(WRITE, i));
    await sleep(2);
    if ((await tcpInfo(sender)).unacked > 0) return true;
  }
  return false;
}

describe.runIf(process.platform === "linux")("ackNow", () => {
  it("makes a receiver that is not reading acknowledge what it holds", async () => {
    expect(await prepareAckNow()).toBe(true);
    const { sender, receiver } = await pausedPair();
    expect(await untilAckHeld(sender)).toBe(true);
    expect(ackNow(receiver)).toBe(true);
    // Loopback delivers the ACK within the call; a few ms is far below the delayed-ACK timer.
    let unacked = (await tcpInfo(sender)).unacked;
    for (let i = 0; i < 5 && unacked > 0; i++) {
      await sleep(1);
      unacked = (await tcpInfo(sender)).unacked;
    }
    expect(unacked).toBe(0);
    // Nothing was lost or read: the receiver still holds every byte.
    expect(receiver.readableLength).toBe(0);
  });

  it("does nothing to a socket that has no descriptor", () => {
    expect(ackNow(new net.Socket())).toBe(false);
  });
});
