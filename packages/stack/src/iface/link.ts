/** The guest link as the interface modules see it: one frame out, counted; none when unplugged. */

import type { FrameMeta, FrameTransport } from "@desktopd/core";
import type { DropCounters } from "../counters.js";
import { type Payload, payloadLength } from "../wire/payload.js";

export class Link {
  transport: FrameTransport | undefined;
  readonly frames = { in: 0, out: 0, bytesIn: 0, bytesOut: 0 };

  constructor(private readonly drops: DropCounters) {}

  /** Sends a frame the link may keep (it is not touched again). */
  send(frame: Buffer, meta?: FrameMeta): void {
    const t = this.transport;
    if (!t) {
      this.drops.count("tx-no-link");
      return;
    }
    this.frames.out++;
    this.frames.bytesOut += frame.length;
    if (meta) t.send(frame, meta);
    else t.send(frame);
  }

  /** The link writes a frame given in parts (writev): `sendParts` never copies the payload. */
  get scatters(): boolean {
    return this.transport?.sendv !== undefined;
  }

  /** Sends one frame as `head` followed by `payload`, both only read during the call. */
  sendParts(head: Buffer, payload: Payload, meta: FrameMeta): void {
    const t = this.transport;
    if (!t?.sendv) {
      this.drops.count("tx-no-link");
      return;
    }
    const parts = Buffer.isBuffer(payload) ? [head, payload] : [head, ...payload];
    this.frames.out++;
    this.frames.bytesOut += payloadLength(parts);
    t.sendv(parts, meta);
  }
}
