/**
 * The stream transport's own edges, on real sockets: a link that closes itself from inside a
 * frame callback, and a socket that was already gone when the link started.
 */
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { streamTransport } from "../../src/transport/stream.js";
import { arpRequest, icmpEchoRequest } from "../fixtures/frames.js";
import { bytes } from "../fixtures/hex.js";
import { framed, until } from "../fixtures/streams.js";

/** A connected pair of TCP sockets on loopback. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const accepted = new Promise<net.Socket>((r) => server.once("connection", r));
  const port = (server.address() as net.AddressInfo).port;
  const client = net.connect(port, "127.0.0.1");
  await new Promise<void>((r) => client.once("connect", r));
  const ours = await accepted;
  server.close();
  return [ours, client];
}

describe("streamTransport", { timeout: 10_000 }, () => {
  it("delivers nothing after a receiver closes the link, even from the same chunk", async () => {
    const [ours, peer] = await socketPair();
    const link = streamTransport(ours, ours, { name: "t" });
    const frames: Buffer[] = [];
    let closes = 0;
    link.start({
      onFrame: (f) => {
        frames.push(f);
        void link.close();
      },
      onClose: () => closes++,
    });
    peer.write(framed(bytes(arpRequest), bytes(icmpEchoRequest)));
    await until(() => closes === 1, "the close");
    expect(frames).toHaveLength(1);
    expect(link.stats.framesIn).toBe(1);
    peer.destroy();
  });

  it("reports the close of a socket that was gone before start", async () => {
    const [ours, peer] = await socketPair();
    peer.destroy();
    await new Promise((r) => ours.once("close", r));
    const link = streamTransport(ours, ours, { name: "t" });
    let closes = 0;
    link.start({ onFrame: () => {}, onClose: () => closes++ });
    expect(closes).toBe(1);
    await link.close();
    expect(closes).toBe(1);
  });
});
