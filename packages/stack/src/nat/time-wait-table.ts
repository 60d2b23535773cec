/**
 * The 4-tuples of connections that wait in TIME-WAIT, each a small record (`TimeWaitRecord`)
 * instead of its flow and connection. Oldest first, bounded: past `max` the oldest record of the
 * guest holding the most goes early, so one guest's churn does not cut others' waits short.
 * One timer, for the oldest, ends the waits in order.
 */
import type { Clock, Timer } from "@desktopd/core";
import type { FlowOwner } from "../iface/ip-output.js";
import { type TimeWaitRecord, timeWaitAnswer } from "../tcp/time-wait.js";
import { TCP_ACK, type TcpEmitFields, type TcpSegment } from "../wire/tcp.js";
import type { FlowIds } from "./tcp-flow.js";

/** What the flow listing shows of a flow besides its 4-tuple, state and times. */
export interface FlowAbout {
  readonly inbound: boolean;
  readonly service: string;
  readonly bytesFromGuest: number;
  readonly bytesToGuest: number;
  readonly openedAt: number;
}

export interface TimeWaitEntry extends FlowAbout {
  readonly record: TimeWaitRecord;
  readonly ids: FlowIds;
  expiresAt: number;
}

export interface TimeWaitTableOptions {
  clock: Clock;
  waitMs: number;
  max: number;
  /** Sends one of our ACKs to the guest. */
  send(ids: FlowIds, fields: TcpEmitFields): void;
  /** An entry went before its time: over `max`, or its 4-tuple was reused. */
  reclaimed(): void;
}

export class TimeWaitTable {
  private readonly entries = new Map<string, TimeWaitEntry>();
  private readonly perOwner = new Map<FlowOwner, number>();
  private timer: Timer | undefined;
  private timerAt: number | undefined;

  constructor(private readonly o: TimeWaitTableOptions) {}

  get size(): number {
    return this.entries.size;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  get(key: string): TimeWaitEntry | undefined {
    return this.entries.get(key);
  }

  values(): IterableIterator<TimeWaitEntry> {
    return this.entries.values();
  }

  /** Starts the wait for `record` (from now). */
  add(record: TimeWaitRecord, ids: FlowIds, about: FlowAbout): void {
    const key = ids.key;
    const entry: TimeWaitEntry = {
      record,
      ids,
      expiresAt: this.o.clock.now() + this.o.waitMs,
      inbound: about.inbound,
      service: about.service,
      bytesFromGuest: about.bytesFromGuest,
      bytesToGuest: about.bytesToGuest,
      openedAt: about.openedAt,
    };
    this.remove(key);
    this.entries.set(key, entry);
    this.perOwner.set(ids.owner, (this.perOwner.get(ids.owner) ?? 0) + 1);
    if (this.entries.size > this.o.max) this.reclaimFromLargest(ids.owner);
    this.arm();
  }

  /** Ends the wait of `key` early, for a new connection on the same 4-tuple. */
  reclaim(key: string): void {
    if (this.remove(key)) this.o.reclaimed();
  }

  /** Answers a guest segment for `entry` (see `timeWaitAnswer`). */
  onSegment(entry: TimeWaitEntry, seg: TcpSegment): void {
    const answer = timeWaitAnswer(entry.record, seg);
    if (answer === "ignore") return;
    const key = entry.ids.key;
    if (answer === "close") {
      this.remove(key);
      return;
    }
    const { ids, record } = entry;
    this.o.send(ids, {
      srcPort: ids.localPort,
      dstPort: ids.guestPort,
      seq: record.seq,
      ack: record.ack,
      flags: TCP_ACK,
      window: record.window,
    });
    if (answer === "ack-restart") {
      // To the back: the entries stay in the order they expire.
      this.entries.delete(key);
      entry.expiresAt = this.o.clock.now() + this.o.waitMs;
      this.entries.set(key, entry);
      this.arm();
    }
  }

  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.entries.clear();
    this.perOwner.clear();
  }

  private remove(key: string): boolean {
    const entry = this.entries.get(key);
    if (!entry) return false;
    this.entries.delete(key);
    const owner = entry.ids.owner;
    const left = (this.perOwner.get(owner) ?? 1) - 1;
    if (left > 0) this.perOwner.set(owner, left);
    else this.perOwner.delete(owner);
    return true;
  }

  /**
   * The oldest record of the guest holding the most, `adder` on a tie: the guest whose record
   * overflowed the table pays first. A few guests, so both scans are short.
   */
  private reclaimFromLargest(adder: FlowOwner): void {
    let largest = adder;
    let most = this.perOwner.get(adder) ?? 0;
    for (const [owner, n] of this.perOwner) {
      if (n > most) {
        most = n;
        largest = owner;
      }
    }
    for (const [key, entry] of this.entries) {
      if (entry.ids.owner !== largest) continue;
      this.reclaim(key);
      return;
    }
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    this.timerAt = undefined;
    const now = this.o.clock.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.remove(key);
    }
    this.arm();
  };

  /** Keeps the timer on the oldest entry's end. */
  private arm(): void {
    const first = this.entries.values().next();
    if (first.done) {
      this.timer?.cancel();
      this.timer = undefined;
      this.timerAt = undefined;
      return;
    }
    const at = first.value.expiresAt;
    if (this.timer && this.timerAt !== undefined && this.timerAt <= at) return;
    this.timer?.cancel();
    this.timerAt = at;
    this.timer = this.o.clock.setTimer(this.expire, Math.max(0, at - this.o.clock.now()));
  }
}
