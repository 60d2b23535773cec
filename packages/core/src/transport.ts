/**
 * A link to one guest NIC: Ethernet frames in, Ethernet frames out. Every transport (TAP, qemu
 * stream, unix datagram, stdio) and every decorator (pcap writer, fault injector) implements it.
 */
export interface FrameTransport {
  /** Human-readable name for logs, e.g. "tap:dtap0". */
  readonly name: string;
  /**
   * Sends one Ethernet frame (no FCS) to the guest. The transport takes ownership of
   * `frame`: the caller must not modify it afterwards. Frames the link cannot carry
   * (too large, link down, queue full) are dropped and counted by the transport.
   */
  send(frame: Buffer, meta?: FrameMeta): void;
  /**
   * Optional: sends one frame given as consecutive parts (headers, then views of payload the
   * sender still owns), as `send` would the joined frame. The parts are only read during the
   * call, so a link that writes them at once (writev) copies nothing, and one that writes later
   * copies them into memory of its own (a socket's queue). Callers pass a handful of parts; a
   * link whose single write takes fewer than it was given joins them first (one write must stay
   * one frame).
   */
  sendv?(parts: readonly Buffer[], meta?: FrameMeta): void;
  /**
   * Starts delivering received frames. The receiver takes ownership of each frame (the transport
   * never reuses the buffer), unless it set `acceptsLent` and the frame comes with `meta.lent`.
   * Called once.
   */
  start(receiver: FrameReceiver): void;
  /** Closes the link; after the returned promise settles no more frames are delivered. */
  close(): Promise<void>;
  /** Counters for this link. */
  readonly stats: TransportStats;
  /**
   * Offloads the link performs (virtio-net header on a TAP opened with `offload: true`).
   * Absent: frames carry complete checksums and are at most one MTU.
   */
  readonly offload?: OffloadCapability;
}

/** What a link can do for the stack instead of JavaScript. */
export interface OffloadCapability {
  /** Frames to the guest may be TCP super-segments (`FrameMeta.gsoSize`), up to 64 KiB. */
  tso: boolean;
  /** Frames to the guest may carry a partial TCP/UDP checksum (`FrameMeta.checksumPartial`). */
  csum: boolean;
}

/**
 * Per-frame offload information (the virtio-net header). Only links with `offload` set pass
 * or accept it; without it a frame is an ordinary, fully checksummed Ethernet frame.
 */
export interface FrameMeta {
  /** The frame is a TCP super-segment (IPv4) to be cut into segments of this many payload bytes. */
  gsoSize?: number;
  /**
   * The TCP/UDP checksum field holds only the pseudo-header sum: the checksum over the bytes
   * from `csumStart` is still to be computed (and is written at `csumStart + csumOffset`).
   */
  checksumPartial?: boolean;
  /** Offset in the frame where checksumming starts (the L4 header). */
  csumStart?: number;
  /** Offset of the checksum field from `csumStart` (16 for TCP, 6 for UDP). */
  csumOffset?: number;
  /**
   * The frame is lent: its memory is the transport's again once `onFrame` returns, so the
   * receiver copies what it keeps. Only given to a receiver that set `acceptsLent`.
   */
  lent?: boolean;
}

export interface FrameReceiver {
  onFrame(frame: Buffer, meta?: FrameMeta): void;
  /**
   * The receiver copies what it keeps of a frame given with `meta.lent`. A transport may then read
   * every frame into the same memory: at gigabits per second, a new buffer per frame keeps V8's
   * collector running full mark-compacts back to back. A decorator sets it only when it passes
   * frames on at once and its own receiver sets it.
   */
  readonly acceptsLent?: boolean;
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
