/**
 * What the daemon is made of: a list of services started in one visible order (see daemon.ts)
 * and closed in the reverse one. A package enters the daemon as one more service.
 */
import type { RunConfig } from "../config.js";

export type ConfigKey = keyof RunConfig;

export interface Service {
  readonly name: string;
  /** Config keys this service can apply while running; any other changed key needs a restart. */
  readonly liveKeys?: readonly ConfigKey[];
  /**
   * Applies `next` for the `changed` keys among `liveKeys`. Resolves with the problems met (a
   * port that cannot be bound), having applied all it could; throws only if nothing was applied.
   */
  reload?(next: RunConfig, changed: readonly ConfigKey[]): Promise<string[]>;
  /** Live keys whose last value is not fully in effect (a port that was taken): the next reload retries them. */
  pending?(): ConfigKey[];
  /** This service's part of GET /v1/status, merged into one object by the daemon. */
  status?(): Record<string, unknown>;
  /** Stops serving and releases what it holds. Called once, in reverse start order. */
  close(): Promise<void>;
}

/** Services in start order, closed in reverse; a failed close is logged and the rest still close. */
export class ServiceList {
  private readonly started: Service[] = [];

  constructor(private readonly onCloseError: (service: string, error: unknown) => void) {}

  add<T extends Service>(service: T): T {
    this.started.push(service);
    return service;
  }

  get all(): readonly Service[] {
    return this.started;
  }

  status(): Record<string, unknown> {
    const merged: Record<string, unknown> = {};
    for (const s of this.started) Object.assign(merged, s.status?.());
    return merged;
  }

  async close(): Promise<void> {
    for (const s of this.started.splice(0).reverse()) {
      await s.close().catch((error: unknown) => this.onCloseError(s.name, error));
    }
  }
}
