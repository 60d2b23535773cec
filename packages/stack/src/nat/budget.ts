/**
 * Byte budget for data the stack buffers on behalf of guests (TCP receive and send buffers),
 * global and per guest. Flows take grants and give them back; a grant is the most a flow may
 * hold, so the sum of grants bounds the memory, whatever the guests send or the host reads.
 */
import { KeyedBudget } from "@desktopd/core";
export interface BufferBudgetOptions {
  /** All guests together (default 256 MiB). */
  totalBytes?: number;
  /** One guest (default 128 MiB): one guest cannot take what the others need. */
  perGuestBytes?: number;
}

/** The byte budget of guests' TCP buffers: a grant is taken per flow and each way. */
export class BufferBudget extends KeyedBudget<number | string> {
  constructor(o: BufferBudgetOptions = {}) {
    super(o.perGuestBytes ?? 128 * 1024 * 1024, o.totalBytes ?? 256 * 1024 * 1024);
  }

  get totalBytes(): number {
    return this.limit;
  }

  get perGuestBytes(): number {
    return this.perKey;
  }

  get usedBytes(): number {
    return this.used;
  }
}

/** A guest's share of a table, so one guest cannot fill it alone. */
export class GuestShares extends KeyedBudget<number | string> {
  full(guest: number | string): boolean {
    return this.available(guest) < 1;
  }
}
