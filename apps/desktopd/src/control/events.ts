/**
 * What happens in a running daemon, for `GET /v1/events` (`desktopd events`): guest links coming
 * and going, published ports added and removed, their connections and failed dials. A plain
 * fan-out: the control server holds one listener per watching client.
 */
import type { Forwarder } from "@desktopd/portfwd";

export interface DaemonEvent {
  /** link-added, link-removed, publish-added, publish-removed, connection, connection-closed, dial-failed */
  type: string;
  /** Wall-clock time, ms since the epoch. */
  time: number;
  [key: string]: unknown;
}

export class EventBus {
  private readonly listeners = new Set<(event: DaemonEvent) => void>();

  emit(type: string, fields: Record<string, unknown>): void {
    if (this.listeners.size === 0) return;
    const event: DaemonEvent = { type, time: Date.now(), ...fields };
    for (const listener of this.listeners) listener(event);
  }

  /** Returns the unsubscribe function. */
  subscribe(listener: (event: DaemonEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Clients watching now. */
  get watchers(): number {
    return this.listeners.size;
  }

  /** Relays a forwarder's events, errors as their message. */
  relay(forwarder: Forwarder): void {
    forwarder.on("added", ({ id, info }) =>
      this.emit("publish-added", { id, target: `${info.targetIp ?? "?"}:${info.targetPort}` }),
    );
    forwarder.on("removed", ({ id }) => this.emit("publish-removed", { id }));
    forwarder.on("connection", ({ id, remote }) => this.emit("connection", { id, remote }));
    forwarder.on("connection-closed", ({ id, remote, bytesIn, bytesOut }) =>
      this.emit("connection-closed", { id, remote, bytesIn, bytesOut }),
    );
    forwarder.on("dial-failed", ({ id, remote, target, error }) =>
      this.emit("dial-failed", { id, remote, target, error: error.message }),
    );
  }
}
