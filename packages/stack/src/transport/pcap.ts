/**
 * A FrameTransport decorator that records every frame, both directions, to a pcap file
 * that tcpdump or Wireshark opens. The link itself is untouched: a slow or failing disk
 * costs capture records (counted in `stats.pcap`), never frames.
 */

import type {
  FrameMeta,
  FrameReceiver,
  FrameTransport,
  OffloadCapability,
  TransportStats,
} from "@desktopd/core";
import { type PcapStats, PcapWriter, type PcapWriterOptions } from "./pcap-writer.js";

export type PcapOptions = PcapWriterOptions;
export type { PcapStats };

export interface PcapTransport extends FrameTransport {
  /** The inner link's counters plus the capture's own. */
  readonly stats: TransportStats & { pcap: PcapStats };
}

/**
 * Wraps `inner` so every frame sent and received is also written to `path` (created or
 * truncated now; throws a TransportError if it cannot be). Sent frames are recorded before
 * `inner` sees them, including ones it then drops. `close()` closes `inner`, then flushes
 * and closes the file.
 */
export function withPcap(inner: FrameTransport, path: string, options: PcapOptions = {}): PcapTransport {
  return new Pcap(inner, new PcapWriter(path, options));
}

class Pcap implements PcapTransport {
  readonly name: string;

  constructor(
    private readonly inner: FrameTransport,
    private readonly writer: PcapWriter,
  ) {
    this.name = `pcap(${inner.name})`;
  }

  get offload(): OffloadCapability | undefined {
    return this.inner.offload;
  }

  get stats(): TransportStats & { pcap: PcapStats } {
    return { ...this.inner.stats, pcap: { ...this.writer.stats } };
  }

  send(frame: Buffer, meta?: FrameMeta): void {
    // Recorded (copied) first: once handed on, the frame belongs to the inner transport.
    this.writer.record(frame);
    if (meta) this.inner.send(frame, meta);
    else this.inner.send(frame);
  }

  start(receiver: FrameReceiver): void {
    this.inner.start({
      onFrame: (frame, meta) => {
        this.writer.record(frame);
        if (meta) receiver.onFrame(frame, meta);
        else receiver.onFrame(frame);
      },
      onClose: (error) => receiver.onClose?.(error),
    });
  }

  async close(): Promise<void> {
    try {
      await this.inner.close();
    } finally {
      await this.writer.close();
    }
  }
}
