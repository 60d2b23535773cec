/**
 * Binding host sockets, with bind failures turned into errors a user can act on: who holds the
 * port, how to allow a privileged port, which address is not ours.
 */
import type dgram from "node:dgram";
import { readFile } from "node:fs/promises";
import type net from "node:net";
import { AddressNotAvailableError, PortfwdError, PortInUseError, PrivilegedPortError } from "./errors.js";
import { findPortHolder } from "./port-holder.js";
import type { Protocol } from "./spec.js";

/** Listens for TCP on `address:port` (0: any free port). */
export async function listenTcp(server: net.Server, address: string, port: number): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      // exclusive: a cluster worker must not share the port behind our back.
      server.listen({ host: address, port, exclusive: true, backlog: 1024 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    throw await explainBindError(err as NodeJS.ErrnoException, "tcp", address, port);
  }
  return (server.address() as net.AddressInfo).port;
}

/** Binds a UDP socket to `address:port` (0: any free port). */
export async function bindUdp(socket: dgram.Socket, address: string, port: number): Promise<number> {
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind({ address, port, exclusive: true }, () => {
        socket.off("error", reject);
        resolve();
      });
    });
  } catch (err) {
    throw await explainBindError(err as NodeJS.ErrnoException, "udp", address, port);
  }
  return socket.address().port;
}

/** The sysctl that says which ports need privileges (1024 unless lowered or raised). */
async function unprivilegedPortStart(): Promise<number> {
  const text = await readFile("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8").catch(() => "");
  const n = Number.parseInt(text, 10);
  return Number.isInteger(n) ? n : 1024;
}

/** Maps a bind errno to a typed error; looks the holder up in /proc for EADDRINUSE. */
export async function explainBindError(
  err: NodeJS.ErrnoException,
  protocol: Protocol,
  address: string,
  port: number,
): Promise<Error> {
  switch (err.code) {
    case "EADDRINUSE":
      return new PortInUseError(protocol, address, port, await findPortHolder(protocol, address, port));
    case "EACCES":
    case "EPERM": {
      const start = await unprivilegedPortStart();
      if (port > 0 && port < start) return new PrivilegedPortError(protocol, address, port, start);
      break;
    }
    case "EADDRNOTAVAIL":
      return new AddressNotAvailableError(protocol, address, port);
  }
  const wrapped = new PortfwdError(`${protocol} ${address}:${port}: ${err.message}`);
  wrapped.cause = err;
  return wrapped;
}
