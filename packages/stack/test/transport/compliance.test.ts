/**
 * Every FrameTransport of this package runs the shared compliance suite of @desktopd/core: the
 * in-memory pair, qemu's stream framing on a unix socket, unix datagrams (vfkit), and the pcap and
 * fault-injecting decorators around a link. (The TAP runs it in tap.e2e.test.ts: it needs root.)
 */
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FrameTransport } from "@desktopd/core";
import { frameTransportCompliance, type TransportPeer } from "@desktopd/core/testing";
import { afterAll } from "vitest";
import { createTransportPair } from "../../src/testing/pair.js";
import { withFaults } from "../../src/transport/fault.js";
import { lengthPrefix } from "../../src/transport/length-prefix.js";
import { withPcap } from "../../src/transport/pcap.js";
import { listenQemuStream } from "../../src/transport/qemu-stream.js";
import { listenUnixDatagram } from "../../src/transport/unix-datagram.js";
import { UnixDgramSocket } from "../../src/transport/unix-dgram-socket.js";

const dir = mkdtempSync(join(tmpdir(), "dtd-compliance-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const path = (name: string) => join(dir, `${name}${++n}`);

/** The other end of an in-memory pair, started and recording. */
function pairPeer(end: FrameTransport): TransportPeer {
  const received: Buffer[] = [];
  end.start({ onFrame: (f) => received.push(Buffer.from(f)) });
  return { send: (f) => end.send(f), received, close: () => end.close() };
}

frameTransportCompliance("in-memory pair", async () => {
  const [transport, other] = createTransportPair();
  return { transport, peer: pairPeer(other) };
});

frameTransportCompliance("withPcap", async () => {
  const [inner, other] = createTransportPair();
  return { transport: withPcap(inner, path("pcap")), peer: pairPeer(other) };
});

frameTransportCompliance("withFaults (no faults)", async () => {
  const [inner, other] = createTransportPair();
  return { transport: withFaults(inner, { seed: 1 }), peer: pairPeer(other) };
});

frameTransportCompliance("qemu stream (listening on a unix socket)", async () => {
  const at = path("qemu");
  let link: FrameTransport | undefined;
  const listener = await listenQemuStream({ path: at }, (l) => {
    link = l;
  });
  const socket = net.connect(at);
  socket.on("error", () => {});
  const received: Buffer[] = [];
  let pending = Buffer.alloc(0);
  socket.on("data", (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const len = pending.readUInt32BE(0);
      received.push(Buffer.from(pending.subarray(4, 4 + len)));
      pending = pending.subarray(4 + len);
    }
  });
  while (!link) await new Promise((r) => setTimeout(r, 5));
  return {
    transport: link,
    peer: {
      send: (f) => {
        if (!socket.destroyed) socket.write(Buffer.concat([lengthPrefix(f.length), f]));
      },
      received,
      close: async () => {
        socket.destroy();
        await listener.close();
      },
    },
  };
});

frameTransportCompliance("unix datagram (vfkit)", async () => {
  const at = path("dgram");
  let link: FrameTransport | undefined;
  const listener = await listenUnixDatagram(at, (l) => {
    link = l;
  });
  const peerPath = path("vm");
  const socket = await UnixDgramSocket.bind(peerPath);
  const received: Buffer[] = [];
  socket.startReceiving(
    (data) => received.push(Buffer.from(data)),
    () => {},
  );
  // Old vfkit's hello makes the peer known without a frame.
  socket.sendTo(Buffer.from("VFKT"), at);
  while (!link) await new Promise((r) => setTimeout(r, 5));
  // The kernel queues few datagrams on a unix socket (net.unix.max_dgram_qlen): a VM waits when
  // it is full, and so does this peer.
  const queue: Buffer[] = [];
  let draining = false;
  const drain = () => {
    while (queue.length > 0) {
      const error = socket.sendTo(queue[0]!, at);
      if (error === "EAGAIN" || error === "EWOULDBLOCK") {
        draining = true;
        setTimeout(drain, 1);
        return;
      }
      queue.shift();
    }
    draining = false;
  };
  return {
    transport: link,
    peer: {
      send: (f) => {
        queue.push(f);
        if (!draining) drain();
      },
      received,
      close: async () => {
        await socket.close();
        await listener.close();
      },
    },
  };
});
