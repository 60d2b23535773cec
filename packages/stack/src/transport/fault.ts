/**
 * A FrameTransport decorator that injects seeded faults: drop, corrupt, duplicate and reorder.
 * The same seed and the same frames give the same faults, so a failing loss test replays.
 */

import type {
  FrameMeta,
  FrameReceiver,
  FrameTransport,
  OffloadCapability,
  TransportStats,
} from "@desktopd/core";
import { type Clock, SeededRandom, systemClock, type Timer } from "@desktopd/core";
import { ConfigError } from "../errors.js";

export interface FaultOptions {
  seed: number;
  /** Probability a frame is dropped. */
  drop?: number;
  /** Probability a frame is delivered twice. */
  duplicate?: number;
  /** Probability a frame is held back and released after the next one. */
  reorder?: number;
  /** Probability one random byte of a frame is changed. */
  corrupt?: number;
  /** "in": frames received from the link; "out": frames sent to it (default "both"). */
  direction?: "both" | "in" | "out";
  /** How long a held-back frame waits for a successor before it is released anyway (default 10 ms). */
  reorderTimeoutMs?: number;
  /** The clock of that wait (default: the system's). */
  clock?: Clock;
}

export interface FaultCounters {
  dropped: number;
  duplicated: number;
  /** Held-back frames that were overtaken (a hold released by its timer does not count). */
  reordered: number;
  corrupted: number;
}

export interface FaultTransport extends FrameTransport {
  /** The inner link's counters plus what the injector did. */
  readonly stats: TransportStats & { faults: FaultCounters };
}

interface Probabilities {
  drop: number;
  duplicate: number;
  reorder: number;
  corrupt: number;
}

/** Wraps `inner` so frames in the chosen direction(s) suffer faults drawn from `options.seed`. */
export function withFaults(inner: FrameTransport, options: FaultOptions): FaultTransport {
  const p: Probabilities = {
    drop: probability(options, "drop"),
    duplicate: probability(options, "duplicate"),
    reorder: probability(options, "reorder"),
    corrupt: probability(options, "corrupt"),
  };
  const direction = options.direction ?? "both";
  if (direction !== "both" && direction !== "in" && direction !== "out") {
    throw new ConfigError(`faults: direction must be "both", "in" or "out", got "${direction}"`);
  }
  if (!Number.isInteger(options.seed)) throw new ConfigError(`faults: seed must be an integer`);
  const hold = { clock: options.clock ?? systemClock, ms: options.reorderTimeoutMs ?? 10 };
  return new Faults(inner, p, options.seed, direction, hold);
}

function probability(options: FaultOptions, key: keyof Probabilities): number {
  const value = options[key] ?? 0;
  if (!(value >= 0 && value <= 1)) throw new ConfigError(`faults: ${key} must be in [0, 1], got ${value}`);
  return value;
}

/**
 * murmur3's 32-bit finalizer: spreads small seeds (1, 2, 3...) over the whole state so that
 * xorshift's first outputs are not tiny, and gives each direction its own stream.
 */
function mixSeed(seed: number, salt: number): number {
  let h = (seed ^ salt) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** One direction's fault pipeline: drop, then corrupt, then duplicate, then reorder. */
class FaultLane {
  private held: Buffer | undefined;
  private heldMeta: FrameMeta | undefined;
  private timer: Timer | undefined;

  constructor(
    private readonly rng: SeededRandom,
    private readonly p: Probabilities,
    private readonly counters: FaultCounters,
    private readonly hold: { clock: Clock; ms: number },
    private readonly emit: (frame: Buffer, meta?: FrameMeta) => void,
  ) {}

  /** Takes ownership of `frame` (it may be changed in place); `meta` travels with it unchanged. */
  push(frame: Buffer, meta?: FrameMeta): void {
    // A draw is made only for a fault that is switched on, so enabling one does not shift the others' stream needlessly.
    if (this.p.drop > 0 && this.rng.float() < this.p.drop) {
      this.counters.dropped++;
      return;
    }
    if (this.p.corrupt > 0 && frame.length > 0 && this.rng.float() < this.p.corrupt) {
      const index = this.rng.u32() % frame.length;
      frame[index] = frame[index]! ^ (1 + (this.rng.u32() % 255));
      this.counters.corrupted++;
    }
    if (this.p.duplicate > 0 && this.rng.float() < this.p.duplicate) {
      this.counters.duplicated++;
      // The receiver owns each frame it gets, so the second delivery needs its own copy.
      const copy = Buffer.from(frame);
      this.reorder(frame, meta);
      this.reorder(copy, meta);
      return;
    }
    this.reorder(frame, meta);
  }

  /** Delivers a held-back frame now (timer expiry or close). */
  release(): void {
    const heldMeta = this.heldMeta;
    const held = this.takeHeld();
    if (held) this.send(held, heldMeta);
  }

  private send(frame: Buffer, meta: FrameMeta | undefined): void {
    if (meta) this.emit(frame, meta);
    else this.emit(frame);
  }

  private reorder(frame: Buffer, meta: FrameMeta | undefined): void {
    const heldMeta = this.heldMeta;
    const held = this.takeHeld();
    if (held) {
      this.counters.reordered++;
      this.send(frame, meta);
      this.send(held, heldMeta);
      return;
    }
    if (this.p.reorder > 0 && this.rng.float() < this.p.reorder) {
      this.held = frame;
      this.heldMeta = meta;
      // Without a successor the frame would wait forever; the timer bounds it and never keeps the process alive.
      this.timer = this.hold.clock.setTimer(() => this.release(), this.hold.ms);
      return;
    }
    this.send(frame, meta);
  }

  private takeHeld(): Buffer | undefined {
    const held = this.held;
    this.held = undefined;
    this.heldMeta = undefined;
    this.timer?.cancel();
    this.timer = undefined;
    return held;
  }
}

class Faults implements FaultTransport {
  readonly name: string;
  private readonly counters: FaultCounters = { dropped: 0, duplicated: 0, reordered: 0, corrupted: 0 };
  private readonly outLane: FaultLane | undefined;
  private inLane: FaultLane | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly inner: FrameTransport,
    private readonly p: Probabilities,
    private readonly seed: number,
    private readonly direction: "both" | "in" | "out",
    private readonly hold: { clock: Clock; ms: number },
  ) {
    this.name = `faults(${inner.name})`;
    if (direction !== "in") {
      this.outLane = new FaultLane(
        new SeededRandom(mixSeed(seed, 0x6f7574)),
        p,
        this.counters,
        hold,
        (f, m) => (m ? this.inner.send(f, m) : this.inner.send(f)),
      );
    }
  }

  get offload(): OffloadCapability | undefined {
    return this.inner.offload;
  }

  get stats(): TransportStats & { faults: FaultCounters } {
    return { ...this.inner.stats, faults: { ...this.counters } };
  }

  send(frame: Buffer, meta?: FrameMeta): void {
    if (this.outLane && !this.closing) this.outLane.push(frame, meta);
    else if (meta) this.inner.send(frame, meta);
    else this.inner.send(frame);
  }

  start(receiver: FrameReceiver): void {
    if (this.direction !== "out") {
      this.inLane = new FaultLane(
        new SeededRandom(mixSeed(this.seed, 0x696e)),
        this.p,
        this.counters,
        this.hold,
        (f, m) => (m ? receiver.onFrame(f, m) : receiver.onFrame(f)),
      );
    }
    const lane = this.inLane;
    this.inner.start({
      // Once closing, nothing may be held back any more: it could surface after close() settles.
      onFrame: (f, m) =>
        lane && !this.closing ? lane.push(f, m) : m ? receiver.onFrame(f, m) : receiver.onFrame(f),
      onClose: (error) => {
        lane?.release();
        receiver.onClose?.(error);
      },
    });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Held-back frames go out before the link closes: reordering never turns into loss.
      this.outLane?.release();
      this.inLane?.release();
      await this.inner.close();
    })();
    return this.closing;
  }
}
