/**
 * A link to one guest NIC: Ethernet frames in, Ethernet frames out.
 * Every transport (TAP, qemu stream, unix datagram, stdio) and every decorator
 * (pcap writer, fault injector) implements this one interface.
 */
export interface FrameTransport {
  /** Human-readable name for logs, e.g. "tap:dtap0". */
  readonly name: string;
  /**
   * Sends one Ethernet frame (no FCS) to the guest. The transport takes ownership of
   * `frame`: the caller must not modify it afterwards. Frames the link cannot carry
   * (too large, link down, queue full) are dropped and counted by the transport.
   */
  send(frame: Buffer): void;
  /**
   * Starts delivering received frames. The receiver takes ownership of each frame
   * (the transport never reuses the buffer). Called once.
   */
  start(receiver: FrameReceiver): void;
  /** Closes the link; after the returned promise settles no more frames are delivered. */
  close(): Promise<void>;
  /** Counters for this link. */
  readonly stats: TransportStats;
}

export interface FrameReceiver {
  onFrame(frame: Buffer): void;
  /** The link went away (guest gone, device removed). `error` is set when it failed. */
  onClose?(error?: Error): void;
}

export interface TransportStats {
  framesIn: number;
  framesOut: number;
  bytesIn: number;
  bytesOut: number;
  /** Frames dropped by the transport, by reason ("oversize", "truncated", "queue-full", ...). */
  drops: Record<string, number>;
}

export function newTransportStats(): TransportStats {
  return { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, drops: {} };
}

export function countDrop(stats: { drops: Record<string, number> }, reason: string): void {
  stats.drops[reason] = (stats.drops[reason] ?? 0) + 1;
}
