/**
 * How the forwarder reaches a target. `@desktopd/stack`'s `Stack` satisfies `Dialer` as it is
 * (`connect` into the guest, `dialUdp`), so this package needs no runtime dependency on it;
 * `createSocketDialer` uses plain host sockets for standalone use.
 */
import dgram from "node:dgram";
import { isIPv6, Socket } from "node:net";
import type { Duplex } from "node:stream";

/** A datagram channel to one target endpoint. */
export interface UdpChannel {
  /** Sends one datagram; the channel may keep `data` until it is sent (do not reuse it). */
  send(data: Buffer): void;
  /** Datagrams from the target endpoint; the handler owns each buffer. */
  onMessage(handler: (data: Buffer) => void): void;
  close(): void;
}

export interface Dialer {
  /**
   * Opens a byte stream to `ip:port`, settled once established. Rejects when the target refuses
   * or cannot be reached. A stream that fails later emits an error whose `reason` or `code`
   * says "reset"/ECONNRESET when the target reset it.
   */
  connect(ip: string, port: number): Promise<Duplex>;
  /** Opens a datagram channel to `ip:port`. Without it, add() refuses UDP specs. */
  dialUdp?(ip: string, port: number): Promise<UdpChannel>;
}

export interface SocketDialerOptions {
  /** Connect timeout (default 10 s). */
  connectTimeoutMs?: number;
}

/** A Dialer over the host's own sockets: forwards host ports to other host addresses or ports. */
export function createSocketDialer(options: SocketDialerOptions = {}): Dialer {
  const timeoutMs = options.connectTimeoutMs ?? 10_000;
  return {
    connect(ip, port) {
      return new Promise((resolve, reject) => {
        // Half-open kept: an end() from the target must not end our write side too.
        const socket = new Socket({ allowHalfOpen: true });
        const timer = setTimeout(
          () =>
            socket.destroy(
              Object.assign(new Error(`connect to ${ip}:${port} timed out`), { code: "ETIMEDOUT" }),
            ),
          timeoutMs,
        );
        socket.once("error", (err) => {
          clearTimeout(timer);
          reject(err);
        });
        socket.connect({ host: ip, port, noDelay: true }, () => {
          clearTimeout(timer);
          socket.removeAllListeners("error");
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
