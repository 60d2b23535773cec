/**
 * A host UDP echo server on 127.0.0.1 (or `host`, e.g. ::1; random port): answers each datagram
 * with `echo:` + payload.
 */
import { createSocket } from "node:dgram";

export interface UdpEchoServer {
  readonly port: number;
  /** Datagrams received, with the sender's address as the host saw it. */
  readonly received: { from: string; port: number; bytes: number }[];
  close(): Promise<void>;
}

export async function startUdpEchoServer(host = "127.0.0.1"): Promise<UdpEchoServer> {
  const sock = createSocket(host.includes(":") ? "udp6" : "udp4");
  const received: { from: string; port: number; bytes: number }[] = [];
  sock.on("message", (msg, rinfo) => {
    received.push({ from: rinfo.address, port: rinfo.port, bytes: msg.length });
    sock.send(Buffer.concat([Buffer.from("echo:"), msg]), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once("error", reject);
    sock.bind(0, host, () => resolve());
  });
  return {
    port: sock.address().port,
    received,
    close: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}
