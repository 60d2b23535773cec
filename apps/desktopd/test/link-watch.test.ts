import { createTransportPair } from "@desktopd/stack/testing";
import { describe, expect, it } from "vitest";
import { watchLink } from "../src/link-watch.js";

function recorder() {
  const frames: Buffer[] = [];
  const closes: (Error | undefined)[] = [];
  return {
    frames,
    closes,
    receiver: { onFrame: (f: Buffer) => frames.push(f), onClose: (e?: Error) => closes.push(e) },
  };
}

describe("watchLink", () => {
  it("passes frames both ways unchanged", async () => {
    const [inner, peer] = createTransportPair();
    const watched = watchLink(inner);
    const near = recorder();
    const far = recorder();
    watched.transport.start(near.receiver);
    peer.start(far.receiver);
    peer.send(Buffer.from("to-guest-side-frame"));
    watched.transport.send(Buffer.from("from-stack-frame"));
    await new Promise((resolve) => setImmediate(resolve));
    expect(near.frames.map(String)).toEqual(["to-guest-side-frame"]);
    expect(far.frames.map(String)).toEqual(["from-stack-frame"]);
    expect(watched.transport.stats.framesOut).toBe(1);
    expect(watched.transport.name).toBe(inner.name);
  });

  it("settles `closed` with the error when the link goes away by itself", async () => {
    const [inner, peer] = createTransportPair();
    const watched = watchLink(inner);
    const near = recorder();
    watched.transport.start(near.receiver);
    await peer.close();
    const error = await watched.closed;
    expect(error?.message).toMatch(/peer closed the link/);
    // The stack behind the decorator still hears about it.
    expect(near.closes).toEqual([error]);
  });

  it("settles `closed` without an error when closed on purpose", async () => {
    const [inner] = createTransportPair();
    const watched = watchLink(inner);
    watched.transport.start(recorder().receiver);
    await watched.transport.close();
    expect(await watched.closed).toBeUndefined();
  });
});
