/** Loopback servers and clients for the forwarder's tests. */
import { type ChildProcess, spawn } from "node:child_process";
import dgram from "node:dgram";
import { once } from "node:events";
import net from "node:net";

/** A TCP server on 127.0.0.1 running `onSocket` for each connection. */
export async function tcpServer(onSocket: (s: net.Socket) => void): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    onSocket(s);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}

/** Echoes bytes back and ends when the client ends. */
export const echo = (s: net.Socket) => {
  s.on("error", () => {});
  s.pipe(s);
};

/** Connects, writes `data`, ends, and resolves with everything read until the server ends. */
export async function roundTrip(port: number, data: Buffer, host = "127.0.0.1"): Promise<Buffer> {
  const s = net.connect({ host, port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on("data", (b: Buffer) => chunks.push(b));
  await once(s, "connect");
  s.end(data);
  await once(s, "end");
  s.destroy();
  return Buffer.concat(chunks);
}

/** Resolves with the error a client socket ends with, or "closed" / "ended" for a clean end. */
export function outcome(s: net.Socket): Promise<string> {
  return new Promise((resolve) => {
    s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    s.on("end", () => resolve("ended"));
    s.on("close", () => resolve("closed"));
  });
}

/** A port that refuses connections now (bound then released). */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A UDP server on 127.0.0.1 that answers `echo:` + payload, and remembers senders. */
export async function udpEcho(): Promise<{ port: number; senders: Set<string>; close(): void }> {
  const sock = dgram.createSocket("udp4");
  const senders = new Set<string>();
  sock.on("message", (msg, r) => {
    senders.add(`${r.address}:${r.port}`);
    sock.send(Buffer.concat([Buffer.from("echo:"), msg]), r.port, r.address);
  });
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", r));
  return { port: sock.address().port, senders, close: () => sock.close() };
}

/** Sends one datagram from a fresh socket and resolves with the first answer. */
export async function udpAsk(port: number, text: string, host = "127.0.0.1"): Promise<string> {
  const sock = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
  try {
    const answer = once(sock, "message");
    sock.send(text, port, host);
    const [msg] = (await answer) as [Buffer];
    return msg.toString();
  } finally {
    sock.close();
  }
}

/** Another process listening on `host:port` over TCP (or UDP): a real foreign holder. */
export async function foreignListener(
  protocol: "tcp" | "udp",
  host = "127.0.0.1",
): Promise<{
  child: ChildProcess;
  port: number;
}> {
  const script =
    protocol === "tcp"
      ? `const s=require("net").createServer().listen(0,${JSON.stringify(host)},()=>console.log(s.address().port))`
      : `const s=require("dgram").createSocket("udp4");s.bind(0,${JSON.stringify(host)},()=>console.log(s.address().port))`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = (await once(child.stdout!, "data")) as [Buffer];
  return { child, port: Number(line.toString().trim()) };
}
