/**
 * A `Dialer` (see @desktopd/core) over plain host sockets, for standalone use. `@desktopd/stack`'s
 * `Stack` is the other one: it dials into its guests.
 */
import dgram from "node:dgram";
import { isIPv6, Socket } from "node:net";
import { type Clock, type Dialer, systemClock } from "@desktopd/core";

export interface SocketDialerOptions {
  /** Connect timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** The clock of that timeout (default: the system's). */
  clock?: Clock;
}

/** A Dialer over the host's own sockets: forwards host ports to other host addresses or ports. */
export function createSocketDialer(options: SocketDialerOptions = {}): Dialer {
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  const clock = options.clock ?? systemClock;
  return {
    connect(ip, port) {
      return new Promise((resolve, reject) => {
        // Half-open kept: an end() from the target must not end our write side too.
        const socket = new Socket({ allowHalfOpen: true });
        const timer = clock.setTimer(
          () =>
            socket.destroy(
              Object.assign(new Error(`connect to ${ip}:${port} timed out`), { code: "ETIMEDOUT" }),
            ),
          timeoutMs,
        );
        // Wired for the socket's whole life: an error before the caller listens must not end the
        // process; the caller sees it through its own listener or `destroyed`.
        let connected = false;
        socket.on("error", (err) => {
          if (connected) return;
          timer.cancel();
          reject(err);
        });
        socket.connect({ host: ip, port, noDelay: true }, () => {
          connected = true;
          timer.cancel();
          resolve(socket);
        });
      });
    },
    async dialUdp(ip, port) {
      const socket = dgram.createSocket(isIPv6(ip) ? "udp6" : "udp4");
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once("error", reject);
          socket.connect(port, ip, () => {
            socket.off("error", reject);
            resolve();
          });
        });
      } catch (err) {
        socket.close();
        throw err;
      }
      // ICMP port unreachable surfaces as ECONNREFUSED on a connected socket: the next send retries.
      socket.on("error", () => {});
      let closed = false;
      return {
        send: (data) => {
          if (!closed) socket.send(data);
        },
        onMessage: (handler) => {
          socket.on("message", (msg) => handler(msg));
        },
        close: () => {
          if (closed) return;
          closed = true;
          socket.close();
        },
      };
    },
  };
}
