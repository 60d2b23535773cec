/**
 * One UDP forward: a host socket; each client address gets its own flow (a channel dialled to
 * the target), so the target sees one stable source per client and answers go back to the
 * right one. Flows close after an idle timeout; the least recently used makes room at the limit.
 */
import dgram from "node:dgram";
import { isIPv6 } from "node:net";
import type { Timer, UdpChannel } from "@desktopd/core";
import { bindUdp } from "./bind.js";
import { dialTarget, type ForwardContext, type RunningForward, remoteOf } from "./forward.js";

/** Datagrams held per flow while its channel is being dialled. */
const MAX_PENDING = 64;
/** Bytes held across all flows of a forward while dialling: 64 × 64 KiB × 1024 flows would be 4 GiB. */
const MAX_PENDING_BYTES = 4 << 20;

interface Flow {
  remote: string;
  address: string;
  port: number;
  channel?: UdpChannel;
  pending: Buffer[];
  lastActive: number;
  bytesIn: number;
  bytesOut: number;
  closed: boolean;
}

export class UdpForward implements RunningForward {
  private readonly socket: dgram.Socket;
  /** By client "address|port", in least-recently-used order. */
  private readonly flows = new Map<string, Flow>();
  private sweeper: Timer | undefined;
  private closed = false;
  private pendingBytes = 0;

  constructor(private readonly ctx: ForwardContext) {
    this.socket = dgram.createSocket(isIPv6(ctx.mapping.hostIp) ? "udp6" : "udp4");
    this.socket.on("message", (msg, rinfo) => this.onDatagram(msg, rinfo.address, rinfo.port));
    this.socket.on("error", (err) => ctx.log.warn({ id: ctx.id, err: err.message }, "udp socket error"));
  }

  private stopped = false;

  /** A sweep every `every` ms until the forward closes. */
  private armSweeper(every: number): void {
    if (this.stopped) return;
    this.sweeper = this.ctx.clock.setTimer(() => {
      this.sweep();
      this.armSweeper(every);
    }, every);
  }

  async start(): Promise<number> {
    const port = await bindUdp(this.socket, this.ctx.mapping.hostIp, this.ctx.mapping.hostPort);
    const every = Math.max(100, Math.min(this.ctx.udpIdleTimeoutMs / 2, 10_000));
    this.armSweeper(every);
    return port;
  }

  async close(_closeConnections: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // A flow has no life without the listening socket (answers leave through it): all close.
    this.sweeper?.cancel();
    this.sweeper = undefined;
    this.stopped = true;
    for (const f of [...this.flows.values()]) this.closeFlow(f);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private onDatagram(msg: Buffer, address: string, port: number): void {
    const key = `${address}|${port}`;
    let flow = this.flows.get(key);
    if (flow) {
      // Refresh the LRU order.
      this.flows.delete(key);
      this.flows.set(key, flow);
    } else {
      flow = this.openFlow(key, address, port);
    }
    flow.lastActive = this.ctx.clock.now();
    if (flow.channel) this.toTarget(flow, flow.channel, msg);
    else if (flow.pending.length < MAX_PENDING && this.pendingBytes + msg.length <= MAX_PENDING_BYTES) {
      flow.pending.push(msg);
      this.pendingBytes += msg.length;
    } else this.ctx.stats.dropped++;
  }

  /** Counted when handed to the target, so dropped datagrams are not counted as carried. */
  private toTarget(flow: Flow, channel: UdpChannel, msg: Buffer): void {
    flow.bytesIn += msg.length;
    this.ctx.stats.bytesIn += msg.length;
    channel.send(msg);
  }

  /** Takes the datagrams held while dialling out of the flow and the byte budget. */
  private takePending(flow: Flow): Buffer[] {
    const pending = flow.pending;
    flow.pending = [];
    for (const d of pending) this.pendingBytes -= d.length;
    return pending;
  }

  private openFlow(key: string, address: string, port: number): Flow {
    const { ctx } = this;
    if (this.flows.size >= ctx.udpMaxFlows) {
      const oldest = this.flows.values().next().value;
      if (oldest) this.closeFlow(oldest);
    }
    const remote = remoteOf(address, port);
    const flow: Flow = {
      remote,
      address,
      port,
      pending: [],
      lastActive: this.ctx.clock.now(),
      bytesIn: 0,
      bytesOut: 0,
      closed: false,
    };
    this.flows.set(key, flow);
    ctx.stats.open++;
    ctx.stats.accepted++;
    ctx.emit("connection", { id: ctx.id, remote });
    // add() refuses UDP specs when the dialer has no dialUdp.
    const { target, result } = dialTarget(ctx, (ip, p) => ctx.dialer.dialUdp!(ip, p));
    result.then(
      (channel) => {
        if (flow.closed) {
          channel.close();
          return;
        }
        flow.channel = channel;
        channel.onMessage((data) => this.toClient(flow, data));
        for (const d of this.takePending(flow)) this.toTarget(flow, channel, d);
      },
      (error: Error) => {
        ctx.stats.dialFailures++;
        ctx.emit("dial-failed", { id: ctx.id, remote, target, error });
        this.closeFlow(flow, error);
      },
    );
    return flow;
  }

  private toClient(flow: Flow, data: Buffer): void {
    if (flow.closed) return;
    flow.lastActive = this.ctx.clock.now();
    flow.bytesOut += data.length;
    this.ctx.stats.bytesOut += data.length;
    this.socket.send(data, flow.port, flow.address, (err) => {
      if (err) this.ctx.stats.dropped++;
    });
  }

  private closeFlow(flow: Flow, error?: Error): void {
    if (flow.closed) return;
    flow.closed = true;
    this.flows.delete(`${flow.address}|${flow.port}`);
    this.ctx.stats.dropped += this.takePending(flow).length;
    flow.channel?.close();
    this.ctx.stats.open--;
    const { bytesIn, bytesOut, remote } = flow;
    this.ctx.emit("connection-closed", {
      id: this.ctx.id,
      remote,
      bytesIn,
      bytesOut,
      ...(error ? { error } : {}),
    });
  }

  private sweep(): void {
    const cutoff = this.ctx.clock.now() - this.ctx.udpIdleTimeoutMs;
    for (const f of [...this.flows.values()]) if (f.lastActive < cutoff) this.closeFlow(f);
  }
}
