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

describe.skipIf(!env.ok)("guest sends FIN, then RST, while the host has not closed", () => {
  let guest: StackGuest;
  let server: net.Server;
  let hostSide: Promise<net.Socket>;

  beforeAll(async () => {
    guest = await startStackGuest({ prefix: "finrst" });
    hostSide = new Promise((resolve) => {
      // The host never ends its side: our socket to it holds a queued FIN when the RST comes.
      server = net.createServer({ allowHalfOpen: true }, (socket) => {
        socket.on("error", () => {});
        socket.resume();
        resolve(socket);
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });

  afterAll(async () => {
    server?.close();
    await guest?.close();
  });

  it("releases the host socket: no handle is left open", async () => {
    const { port } = server.address() as net.AddressInfo;
    const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap").length;
    const before = tcpHandles();
    // shutdown(SHUT_WR) sends the FIN; SO_LINGER 0 makes close() send an RST.
    const py = [
      "import socket, struct, sys, time",
      "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))",
      "s.sendall(b'x' * 1000)",
      "s.shutdown(socket.SHUT_WR)",
      "time.sleep(0.5)",
      "s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))",
      "s.close()",
    ].join("\n");
    await guest.sh(`python3 -c ${shellQuote(py)} ${guest.stack.config.hostAddress} ${port}`);
    const socket = await hostSide;
    // The host sees our FIN; the flow (and its host socket handle) is then gone from the stack.
    if (!socket.readableEnded) await new Promise((r) => socket.once("end", r));
    socket.destroy();
    // Neither the accepted socket nor the stack's own socket to it may stay open.
    for (let i = 0; i < 100 && tcpHandles() > before; i++) await new Promise((r) => setTimeout(r, 50));
    expect(tcpHandles()).toBe(before);
    expect(guest.stack.counters().tcp.open).toBe(0);
  });
});

describe.skipIf(!env.ok)("a clean close both ways", () => {
  let guest: StackGuest;
  let server: net.Server;

  beforeAll(async () => {
    guest = await startStackGuest({ prefix: "cleanclose" });
    // Ends its side when the guest ends its own: the stack's FIN follows the guest's.
    server = net.createServer((socket) => {
      socket.on("error", () => {});
      socket.resume();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });

  afterAll(async () => {
    server?.close();
    await guest?.close();
  });

  it("ends with FIN and ACK only: the guest keeps its TIME-WAIT (no reset cuts it short)", async () => {
    const { port } = server.address() as net.AddressInfo;
    const host = guest.stack.config.hostAddress;
    const py = [
      "import socket, sys",
      "s = socket.create_connection((sys.argv[1], int(sys.argv[2])))",
      "s.shutdown(socket.SHUT_WR)",
      "assert s.recv(1) == b''",
      "s.close()",
    ].join("\n");
    await guest.sh(`python3 -c ${shellQuote(py)} ${host} ${port}`);
    // The guest closed first after both FINs: its socket waits in TIME-WAIT unless an RST came.
    let waiting = "";
    for (let i = 0; i < 20 && !waiting.includes(`${host}:${port}`); i++) {
      await new Promise((r) => setTimeout(r, 50));
      waiting = await guest.sh(`ss -Htan state time-wait dst ${host}:${port}`);
    }
    expect(waiting).toContain(`${host}:${port}`);
  });
});

describe.skipIf(!env.ok)("TIME-WAIT of connections the host closed first", () => {
  let guest: StackGuest;
  let server: net.Server;
  let accepted = 0;

  beforeAll(async () => {
    guest = await startStackGuest({ prefix: "timewait", stack: { tcp: { maxTimeWait: 3 } } });
    // Closes first: the stack's side of each connection ends in TIME-WAIT.
    server = net.createServer((socket) => {
      accepted++;
      socket.on("error", () => {});
      socket.end("bye\n");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  });

  afterAll(async () => {
    server?.close();
    await guest?.close();
  });

  it("lets the guest reuse the same 4-tuple at once, and keeps at most maxTimeWait of them", async () => {
    const { port } = server.address() as net.AddressInfo;
    const host = guest.stack.config.hostAddress;
    // Ten connections from one fixed source port, one after the other: each new SYN meets the
    // previous connection in TIME-WAIT on the stack's side and must take it over.
    const py = [
      "import errno, socket, sys, time",
      "def reuse():",
      "    # Until the stack's last ACK reaches it, the guest's own side still holds the 4-tuple.",
      "    for attempt in range(200):",
      "        s = socket.socket()",
      "        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)",
      "        s.settimeout(5)",
      "        s.bind(('0.0.0.0', 40123))",
      "        try:",
      "            s.connect((sys.argv[1], int(sys.argv[2])))",
      "            return s",
      "        except OSError as e:",
      "            s.close()",
      "            if e.errno != errno.EADDRNOTAVAIL: raise",
      "            time.sleep(0.01)",
      "    raise SystemExit('the 4-tuple never came free in the guest')",
      "for i in range(10):",
      "    s = reuse()",
      "    assert s.recv(16) == b'bye\\n'",
      "    # Read the stack's FIN before closing: the guest closes second, so only the stack waits.",
      "    assert s.recv(16) == b''",
      "    s.close()",
      "for i in range(6):",
      "    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)",
      "    assert s.recv(16) == b'bye\\n'",
      "    s.close()",
    ].join("\n");
    await guest.sh(`python3 -c ${shellQuote(py)} ${host} ${port}`);
    expect(accepted).toBe(16);
    const tcp = guest.stack.counters().tcp;
    // Six other 4-tuples left in TIME-WAIT, three kept: the rest were freed early.
    expect(tcp.open).toBeLessThanOrEqual(3);
    expect(tcp.timeWaitReclaimed).toBeGreaterThanOrEqual(9 + 3);
  });
});
