/**
 * Slots per client and in total, for work a client can start at will (queries being resolved,
 * TCP connections): one guest cannot take more than its share, all guests together no more than
 * the total. A client with no slot held has no entry, so the table is as large as the number of
 * clients busy at once.
 */
import { isIP } from "node:net";
import { KeyedBudget } from "@desktopd/core";

export type LimitReason = "client" | "total";

export class ClientLimiter {
  private readonly slots: KeyedBudget<string>;

  constructor(perClient: number, total: number) {
    this.slots = new KeyedBudget(perClient, total);
  }

  /** Takes a slot for `client`, or says which bound is in the way (nothing taken then). */
  acquire(client: string): LimitReason | undefined {
    if (this.slots.used >= this.slots.limit) return "total";
    return this.slots.take(client) === 0 ? "client" : undefined;
  }

  /** Gives back a slot `acquire` gave; once per slot. */
  release(client: string): void {
    this.slots.give(client);
  }

  /** Slots held, all clients. */
  get inUse(): number {
    return this.slots.used;
  }

  /** Clients holding a slot. */
  get clients(): number {
    return this.slots.keys;
  }
}

/**
 * The address of a client label "address:port", as the listener and the gateway binding name
 * their clients (IPv6 without brackets: the part after the last colon is the port); a label
 * without a port is its own address.
 */
export function clientAddress(client: string): string {
  const colon = client.lastIndexOf(":");
  if (colon <= 0 || !/^\d+$/.test(client.slice(colon + 1))) return client;
  const host = client.slice(0, colon);
  // "fd00::1" alone ends in digits too: only a host that is still an address had a port cut off.
  return isIP(host) ? host : client;
}
