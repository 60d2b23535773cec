/** One TCP forward: a host listener whose every connection is dialled to the target and joined. */
import net from "node:net";
import type { Duplex } from "node:stream";
import { withLandingReads } from "@desktopd/core";
import { listenTcp } from "./bind.js";
import { dialTarget, type ForwardContext, type RunningForward, remoteOf } from "./forward.js";
import { abortTarget, joinStreams, resetSocket } from "./pipe.js";

interface Conn {
  client: net.Socket;
  target?: Duplex;
}

export class TcpForward implements RunningForward {
  // Half-open: a client that shuts its write side still gets the rest of the answer.
  private readonly server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
  private readonly conns = new Set<Conn>();

  constructor(private readonly ctx: ForwardContext) {
    this.server.on("connection", (accepted) => this.onConnection(accepted));
    this.server.on("error", (err) => ctx.log.warn({ id: ctx.id, err: err.message }, "listener error"));
  }

  start(): Promise<number> {
    return listenTcp(this.server, this.ctx.mapping.hostIp, this.ctx.mapping.hostPort);
  }

  async close(closeConnections: boolean): Promise<void> {
    // close() stops accepting at once; its callback would wait for every connection to end.
    if (this.server.listening) this.server.close();
    if (!closeConnections) return;
    for (const c of this.conns) {
      resetSocket(c.client);
      if (c.target) abortTarget(c.target);
    }
  }

  private onConnection(accepted: net.Socket): void {
    const { ctx } = this;
    // Reads go to the target once it is dialled; until then the socket stays paused.
    let toTarget: ((bytes: Buffer) => boolean) | undefined;
    const client = withLandingReads(accepted, (bytes) => toTarget?.(bytes) ?? false);
    const remote = remoteOf(client.remoteAddress, client.remotePort);
    const conn: Conn = { client };
    const counters = { bytesIn: 0, bytesOut: 0 };
    this.conns.add(conn);
    ctx.stats.open++;
    ctx.stats.accepted++;
    ctx.emit("connection", { id: ctx.id, remote });
    let finished = false;
    const finish = (error?: Error) => {
      if (finished) return;
      finished = true;
      this.conns.delete(conn);
      ctx.stats.open--;
      ctx.emit("connection-closed", { id: ctx.id, remote, ...counters, ...(error ? { error } : {}) });
    };
    // Counted as they flow, so list() shows live totals.
    const count = (direction: "in" | "out", n: number) => {
      if (direction === "in") {
        counters.bytesIn += n;
        ctx.stats.bytesIn += n;
      } else {
        counters.bytesOut += n;
        ctx.stats.bytesOut += n;
      }
    };
    const early = (err: Error) => finish(err);
    client.on("error", early);
    client.once("close", () => {
      if (!conn.target) finish();
    });
    if (ctx.tcpIdleTimeoutMs !== undefined) {
      client.setTimeout(ctx.tcpIdleTimeoutMs, () => {
        ctx.log.debug({ id: ctx.id, remote }, "idle timeout");
        client.destroy();
        conn.target?.destroy();
      });
    }

    const { target: targetName, result } = dialTarget(ctx, (ip, port) => ctx.dialer.connect(ip, port));
    result.then(
      (target) => {
        if (client.destroyed) {
          target.destroy();
          return;
        }
        conn.target = target;
        client.off("error", early);
        toTarget = joinStreams(client, target, ctx.readPool, count, finish);
        client.resume();
      },
      (error: Error) => {
        ctx.stats.dialFailures++;
        ctx.log.debug({ id: ctx.id, remote, target: targetName, err: error.message }, "dial failed");
        ctx.emit("dial-failed", { id: ctx.id, remote, target: targetName, error });
        // A reset, not a clean close: the client must not take an empty answer for a complete one.
        resetSocket(client);
        finish(error);
      },
    );
  }
}
