/**
 * ICMP echo to the world, IPv4 and IPv6: a guest's ping to an address beyond the gateway leaves
 * through an echo socket of the host — the unprivileged ping socket where ping_group_range allows
 * it, else a raw socket (root: CAP_NET_RAW) — with a sequence number of the relay's own, and the
 * reply comes back to the guest with the guest's identifier and sequence. The egress policy
 * decides as for TCP and UDP (a rule naming no protocol covers ICMP too). Without either socket,
 * echo is counted as not relayed, once logged. Requests in flight are bounded and expire.
 */
import type { Clock, Logger, Timer } from "@desktopd/core";
import type { DropCounters } from "../counters.js";
import type { EgressPolicy } from "../egress.js";
import {
  type EchoReply,
  IcmpEchoSocket,
  type IcmpFamily,
  type IcmpSocketKind,
} from "../transport/icmp-echo-socket.js";
import { ipv4ToString } from "../wire/address.js";
import { formatIp, type IpAddr } from "../wire/ip-addr.js";
import { ipv6ToString, parseIpv6Address } from "../wire/ipv6.js";

export interface IcmpRelayOptions {
  /**
   * Relay echo beyond the gateway (default false: a library sends nothing to the world unless
   * told to). desktopd turns it on.
   */
  enabled?: boolean;
  /** A request unanswered this long is forgotten (default 30 s). */
  idleTimeoutMs?: number;
  /** Requests in flight, all guests, per family (default 1024); the oldest makes room. */
  maxMappings?: number;
  /** Socket kinds to try, in order (default dgram, then raw). */
  kinds?: IcmpSocketKind[];
}

/** Delivers a relayed reply to a guest: the interface of the guest's family builds the frame. */
export type EchoReplySink = (guest: IpAddr, from: IpAddr, id: number, seq: number, payload: Buffer) => void;

interface InFlight {
  guest: IpAddr;
  guestId: number;
  guestSeq: number;
  dst: IpAddr;
  sentAt: number;
}

/** One family's socket and requests in flight, by the sequence number the relay sent. */
interface Side {
  family: IcmpFamily;
  socket?: IcmpEchoSocket;
  opening?: Promise<IcmpEchoSocket | undefined>;
  unavailable?: string;
  inFlight: Map<number, InFlight>;
  nextSeq: number;
  sink?: EchoReplySink;
}

export class IcmpEchoRelay {
  readonly counters = { requests: 0, replies: 0, denied: 0, unavailable: 0 };
  private readonly sides: Record<IcmpFamily, Side>;
  private sweeper: Timer | undefined;
  private closed = false;
  private readonly enabled: boolean;
  private readonly idleMs: number;
  private readonly max: number;
  private readonly kinds: IcmpSocketKind[];
  /** The identifier of raw sockets' requests (a dgram socket's is the kernel's). */
  private readonly rawId = 1 + Math.floor(Math.random() * 0xfffe);

  constructor(
    private readonly drops: DropCounters,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly egress: EgressPolicy,
    o: IcmpRelayOptions = {},
  ) {
    this.enabled = o.enabled === true;
    this.idleMs = o.idleTimeoutMs ?? 30_000;
    this.max = o.maxMappings ?? 1024;
    this.kinds = o.kinds ?? ["dgram", "raw"];
    const side = (family: IcmpFamily): Side => ({
      family,
      inFlight: new Map(),
      nextSeq: Math.floor(Math.random() * 0x10000),
    });
    this.sides = { 4: side(4), 6: side(6) };
  }

  /** Where replies to guests of `family` go; a family without a sink is not relayed. */
  deliverTo(family: IcmpFamily, sink: EchoReplySink): void {
    this.sides[family].sink = sink;
  }

  /** The socket kind each family got, once one was opened: for status. */
  describeSockets(): Partial<Record<"ipv4" | "ipv6", string>> {
    const out: Partial<Record<"ipv4" | "ipv6", string>> = {};
    for (const side of Object.values(this.sides)) {
      const name = side.family === 4 ? "ipv4" : "ipv6";
      if (side.socket) out[name] = side.socket.kind;
      else if (side.unavailable) out[name] = `unavailable: ${side.unavailable}`;
    }
    return out;
  }

  /** A guest's echo request to `dst`, beyond the gateway. */
  relay(guest: IpAddr, dst: IpAddr, id: number, seq: number, payload: Buffer): void {
    const side = this.sides[typeof dst === "number" ? 4 : 6];
    if (!this.enabled || side.unavailable !== undefined || this.closed || !side.sink) {
      this.drops.count("icmp-echo-not-relayed");
      return;
    }
    const verdict = this.egress.check({
      protocol: "icmp",
      guestIp: guest,
      guestPort: 0,
      dstIp: dst,
      dstPort: 0,
    });
    if (!verdict.allowed) {
      this.counters.denied++;
      this.drops.count("icmp-echo-egress-denied");
      return;
    }
    const dstBytes = addressBytes(dst);
    if (!dstBytes) return;
    if (side.inFlight.size >= this.max) {
      // The oldest request makes room: a flood from one guest ages out its own first.
      const oldest = side.inFlight.keys().next().value!;
      side.inFlight.delete(oldest);
      this.drops.count("icmp-echo-mappings-full");
    }
    let hostSeq = side.nextSeq;
    while (side.inFlight.has(hostSeq)) hostSeq = (hostSeq + 1) & 0xffff;
    side.nextSeq = (hostSeq + 1) & 0xffff;
    side.inFlight.set(hostSeq, { guest, guestId: id, guestSeq: seq, dst, sentAt: this.clock.now() });
    this.counters.requests++;
    const send = (s: IcmpEchoSocket | undefined) => {
      if (s && !s.send(dstBytes, this.rawId, hostSeq, payload)) this.drops.count("icmp-echo-send-failed");
    };
    if (side.socket) send(side.socket);
    else void this.open(side).then(send);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sweeper?.cancel();
    for (const side of Object.values(this.sides)) {
      const s = side.socket ?? (await side.opening);
      side.socket = undefined;
      await s?.close();
    }
  }

  private open(side: Side): Promise<IcmpEchoSocket | undefined> {
    side.opening ??= IcmpEchoSocket.open(side.family, this.kinds).then(
      (s) => {
        if (this.closed) {
          void s.close();
          return undefined;
        }
        side.socket = s;
        this.log.info({ family: `ipv${side.family}`, socket: s.kind }, "ICMP echo relay open");
        s.receive(
          (reply) => this.onReply(side, s, reply),
          (error) => {
            side.unavailable = error.message;
            this.log.warn({ err: error.message }, "ICMP echo relay stopped");
          },
        );
        this.armSweeper();
        return s;
      },
      (error: Error) => {
        side.unavailable = error.message;
        this.counters.unavailable++;
        this.log.info(
          { err: error.message },
          "ICMP echo beyond the gateway is not relayed (needs net.ipv4.ping_group_range to cover desktopd's group, or root)",
        );
        return undefined;
      },
    );
    return side.opening;
  }

  /** Replies to our requests only: a raw socket sees every ping reply the host gets. */
  private onReply(side: Side, s: IcmpEchoSocket, reply: EchoReply): void {
    if (s.kind === "raw" && reply.id !== this.rawId) return;
    const m = side.inFlight.get(reply.seq);
    if (!m || formatIp(m.dst) !== formatBytes(reply.from)) return;
    side.inFlight.delete(reply.seq);
    this.counters.replies++;
    side.sink?.(m.guest, m.dst, m.guestId, m.guestSeq, reply.payload);
  }

  private armSweeper(): void {
    if (this.sweeper || this.closed) return;
    this.sweeper = this.clock.setTimer(
      () => {
        this.sweeper = undefined;
        const now = this.clock.now();
        for (const side of Object.values(this.sides)) {
          for (const [seq, m] of side.inFlight) {
            if (now - m.sentAt < this.idleMs) break; // oldest first
            side.inFlight.delete(seq);
          }
        }
        this.armSweeper();
      },
      Math.min(this.idleMs, 10_000),
    );
  }

  /** For logs: the destinations guests are pinging now. */
  describe(): string[] {
    return Object.values(this.sides).flatMap((side) =>
      [...side.inFlight.values()].map((m) => `${formatIp(m.guest)} -> ${formatIp(m.dst)}`),
    );
  }
}

function addressBytes(a: IpAddr): Buffer | undefined {
  if (typeof a === "string") return parseIpv6Address(a);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(a >>> 0, 0);
  return b;
}

function formatBytes(b: Buffer): string {
  return b.length === 4 ? ipv4ToString(b.readUInt32BE(0)) : ipv6ToString(b);
}
