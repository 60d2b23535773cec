/**
 * Half-close from the host first, then a guest upload into a slow host reader: everything the
 * guest sent must reach the host even though the guest's side ends long before the host has read it.
 */
import { createHash } from "node:crypto";
import net from "node:net";
import {
  haveRootAndNetns,
  SEEDED_BYTES_PROGRAM,
  type StackGuest,
  seededSha256,
  shellQuote,
  startStackGuest,
} from "@desktopd/stack/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const env = haveRootAndNetns();
const SIZE = 32 * 1024 * 1024;

describe.skipIf(!env.ok)("host half-closes first, guest keeps sending", () => {
  let guest: StackGuest;
  let server: net.Server;
  let received: Promise<{ sha256: string; bytes: number }>;

  beforeAll(async () => {
    guest = await startStackGuest({ prefix: "halfclose" });
    received = new Promise((resolve) => {
      server = net.createServer({ allowHalfOpen: true }, (socket) => {
        socket.end(); // FIN to the guest at once; this side only reads from now on
        const hash = createHash("sha256");
        let bytes = 0;
        socket.on("data", (chunk: Buffer) => {
          hash.update(chunk);
          bytes += chunk.length;
          // A slow reader: the stack still holds most of the upload when the guest's FIN arrives.
          socket.pause();
          setTimeout(() => socket.resume(), 5);
        });
        socket.on("end", () => resolve({ sha256: hash.digest("hex"), bytes }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });

  afterAll(async () => {
    server?.close();
    await guest?.close();
  });

  it("delivers the whole upload", async () => {
    const { port } = server.address() as net.AddressInfo;
    await guest.sh(
      `${shellQuote(process.execPath)} --input-type=module -e ${shellQuote(SEEDED_BYTES_PROGRAM)} ${SIZE} 61 | ` +
        `socat -u - TCP:${guest.stack.config.hostAddress}:${port}`,
      120_000,
    );
    expect(await received).toEqual({ sha256: seededSha256(SIZE, 61), bytes: SIZE });
  }, 150_000);
});
