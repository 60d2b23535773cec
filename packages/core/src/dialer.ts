/**
 * How a forwarder reaches a target: a stack dialling into its guests, or plain host sockets.
 * `@desktopd/stack`'s `Stack` satisfies it as it is.
 */
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
   * says "reset"/ECONNRESET when the target reset it. Once a write's callback has run, the
   * stream holds nothing of that chunk's memory (as a `net.Socket`): a forwarder may reuse it.
   */
  connect(ip: string, port: number): Promise<Duplex>;
  /** Opens a datagram channel to `ip:port`. Without it, UDP is refused. */
  dialUdp?(ip: string, port: number): Promise<UdpChannel>;
}
