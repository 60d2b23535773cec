/**
 * Slots per client and in total, for work a client can start at will (queries being resolved,
 * TCP connections): one guest cannot take more than its share, all guests together no more than
 * the total. A client with no slot held has no entry, so the table is as large as the number of
 * clients busy at once.
 */
import { isIP } from "node:net";

export type LimitReason = "client" | "total";

export class ClientLimiter {
  private readonly held = new Map<string, number>();
  private count = 0;

  constructor(
    private readonly perClient: number,
    private readonly total: number,
  ) {}

  /** Takes a slot for `client`, or says which bound is in the way (nothing taken then). */
  acquire(client: string): LimitReason | undefined {
    if (this.count >= this.total) return "total";
    const mine = this.held.get(client) ?? 0;
    if (mine >= this.perClient) return "client";
    this.held.set(client, mine + 1);
    this.count++;
    return undefined;
  }

  /** Gives back a slot `acquire` gave; once per slot. */
  release(client: string): void {
    const mine = this.held.get(client);
    if (mine === undefined) return;
    if (mine <= 1) this.held.delete(client);
    else this.held.set(client, mine - 1);
    this.count--;
  }

  /** Slots held, all clients. */
  get inUse(): number {
    return this.count;
  }

  /** Clients holding a slot. */
  get clients(): number {
    return this.held.size;
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
