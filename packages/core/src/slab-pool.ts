/**
 * Memory for bytes read from sockets, recycled instead of garbage-collected.
 *
 * Node gives each socket read a fresh 64 KiB ArrayBuffer. V8 counts those bytes as external
 * memory and, at gigabits per second, runs a full mark-compact every few milliseconds, so a
 * relay spends more time in the collector than relaying. Here reads land in one shared buffer
 * (a socket's `onread`: libuv calls back before its next read) and are copied into slabs that
 * return to a free list once every view cut from them has been released: for the stack, when
 * the guest acknowledged the bytes or the connection dropped them; for a port forward, when the
 * target took them.
 *
 * Bounded: at most `maxSlabs` slabs exist at once. A peer that never acknowledges pins the
 * slabs its data lies in, so past the bound copies get buffers of their own size, as Node's
 * reads do, and a hostile peer can never make a few bytes hold whole slabs beyond it. A view
 * that is never released only costs its slab's reuse: the slab is then collected like any buffer.
 */
import type { Clock, Timer } from "./clock.js";

export interface SlabPoolOptions {
  /** Bytes per slab (default 256 KiB). */
  slabSize?: number;
  /** Slabs in use and free together (default 128: 32 MiB). */
  maxSlabs?: number;
  /**
   * Free slabs kept for reuse (default 32: 8 MiB, a few guests' windows in flight); the rest
   * are left to the collector.
   */
  maxFree?: number;
  /** With a clock, the free slabs are let go after `idleMs` (default 10 s) without a copy. */
  clock?: Clock;
  idleMs?: number;
}

interface Slab {
  readonly bytes: Buffer;
  /** Bytes cut from this slab and not yet released. */
  live: number;
  /** On the free list: nothing may be cut from it or released into it. */
  isFree: boolean;
}

export interface SlabPoolStats {
  slabsAllocated: number;
  slabsReused: number;
  /** Copies that got a buffer of their own: the pool was at `maxSlabs`, or the data was larger than a slab. */
  unpooled: number;
}

export class SlabPool {
  private readonly slabSize: number;
  private readonly maxSlabs: number;
  private readonly maxFree: number;
  private readonly free: Slab[] = [];
  /** The slab of each view's ArrayBuffer; weak, so a view never released never pins its slab. */
  private readonly slabs = new WeakMap<ArrayBufferLike, Slab>();
  /** Slabs that exist: allocated and not yet collected. */
  private alive = 0;
  private readonly collected = new FinalizationRegistry<void>(() => {
    this.alive--;
  });
  private current: Slab | undefined;
  private used = 0;
  private readonly clock: Clock | undefined;
  private readonly idleMs: number;
  private lastCopyAt = 0;
  private idleTimer: Timer | undefined;
  readonly stats: SlabPoolStats = { slabsAllocated: 0, slabsReused: 0, unpooled: 0 };

  private closed = false;

  constructor(options: SlabPoolOptions = {}) {
    this.slabSize = options.slabSize ?? 256 * 1024;
    this.maxSlabs = options.maxSlabs ?? 128;
    this.maxFree = Math.min(options.maxFree ?? 32, this.maxSlabs);
    this.clock = options.clock;
    this.idleMs = options.idleMs ?? 10_000;
  }

  /** A copy of `src`, in pool memory when there is room; give it back with `release`. */
  copy(src: Buffer): Buffer {
    const view = this.take(src.length);
    src.copy(view);
    return view;
  }

  /**
   * `n` bytes of pool memory when there is room, of their own otherwise, for the caller to fill
   * (their content is whatever was there); give them back with `release`.
   */
  take(n: number): Buffer {
    if (this.clock) this.lastCopyAt = this.clock.now();
    let slab = this.current;
    if (!slab || this.used + n > this.slabSize) slab = n <= this.slabSize ? this.nextSlab() : undefined;
    if (!slab) {
      this.stats.unpooled++;
      return Buffer.allocUnsafe(n);
    }
    const view = slab.bytes.subarray(this.used, this.used + n);
    this.used += n;
    slab.live += n;
    return view;
  }

  /** `view`, from `copy`, is read no more (call once per view); other buffers are ignored. */
  release(view: Buffer): void {
    const slab = this.slabs.get(view.buffer);
    if (!slab || slab.isFree) return;
    slab.live -= view.length;
    if (slab.live > 0) return;
    // The current slab starts over: a steady flow keeps reading into the same warm memory.
    if (slab === this.current) this.used = 0;
    else this.recycle(slab);
  }

  /** Slabs that exist, and how many of them are free. */
  get size(): { slabs: number; free: number } {
    return { slabs: this.alive, free: this.free.length };
  }

  private nextSlab(): Slab | undefined {
    const old = this.current;
    this.current = undefined;
    if (old && old.live <= 0) this.recycle(old);
    let slab = this.free.pop();
    if (slab) {
      slab.isFree = false;
      this.stats.slabsReused++;
    } else if (this.alive < this.maxSlabs) {
      // allocUnsafeSlow: memory of its own, never a slice of Node's shared pool.
      slab = { bytes: Buffer.allocUnsafeSlow(this.slabSize), live: 0, isFree: false };
      this.slabs.set(slab.bytes.buffer, slab);
      this.collected.register(slab.bytes.buffer, undefined);
      this.alive++;
      this.stats.slabsAllocated++;
    } else return undefined;
    this.current = slab;
    this.used = 0;
    return slab;
  }

  private recycle(slab: Slab): void {
    slab.live = 0;
    // Left to the collector: the free list is full, or the pool is closed (late write callbacks).
    if (this.closed || this.free.length >= this.maxFree) return;
    slab.isFree = true;
    this.free.push(slab);
    this.armIdle();
  }

  /** Lets the free slabs go once copies have stopped for `idleMs`: an idle daemon keeps none. */
  private armIdle(): void {
    const clock = this.clock;
    if (!clock || this.idleTimer) return;
    this.idleTimer = clock.setTimer(
      () => {
        this.idleTimer = undefined;
        if (clock.now() - this.lastCopyAt >= this.idleMs) this.free.length = 0;
        else this.armIdle();
      },
      Math.max(1, this.idleMs - (clock.now() - this.lastCopyAt)),
    );
  }

  /** Stops the idle timer and lets the free slabs go (the stack is closing). */
  close(): void {
    this.closed = true;
    this.idleTimer?.cancel();
    this.idleTimer = undefined;
    this.free.length = 0;
  }
}
