/**
 * The host side: each guest connection is relayed, message by message, to the host's agent
 * (`$SSH_AUTH_SOCK`). The relay reads every request, so a policy can hold: only listing and
 * signing (add, remove, lock, unlock and extensions get SSH_AGENT_FAILURE), only some keys
 * (others are hidden from the list and cannot sign), and every signature logged with the key's
 * fingerprint and the guest flow that asked. Requests are answered in order, one at a time per
 * connection, as the protocol has it; a guest that sends faster is paused, not buffered for.
 */
import net from "node:net";
import type { Duplex } from "node:stream";
import { type Logger, silentLogger } from "@desktopd/core";
import { AgentConfigError, AgentProtocolError } from "./errors.js";
import {
  type AgentMessage,
  encodeIdentities,
  encodeMessage,
  FAILURE,
  fingerprint,
  isFingerprint,
  keyType,
  MessageReader,
  MessageType,
  parseIdentities,
  parseSignRequest,
} from "./wire.js";

export interface AgentPolicy {
  /** Only list keys and sign: everything else is answered SSH_AGENT_FAILURE without reaching the agent. */
  signOnly?: boolean;
  /** `SHA256:...` fingerprints of the keys guests may see and use; others are hidden. Default: all. */
  keys?: readonly string[];
}

export interface ClientInfo {
  ip: string;
  port: number;
}

/** One signature request: allowed (and passed to the agent) or refused by the policy. */
export interface SignEvent {
  time: number;
  fingerprint: string;
  keyType: string;
  client?: ClientInfo;
  allowed: boolean;
}

/** A request the policy refused without asking the agent. */
export interface RefusalEvent {
  time: number;
  request: string;
  client?: ClientInfo;
  reason: "sign-only" | "key-not-allowed";
}

export interface AgentRelayOptions {
  /** The host agent's socket (default: `$SSH_AUTH_SOCK` when the relay is made). */
  socketPath?: string;
  /** How to reach the agent instead of `socketPath` (tests, other transports). */
  connectAgent?: () => Duplex;
  policy?: AgentPolicy;
  /** Bound on the agent's answer to one request, ms (default 60 000: a key may ask for a touch). */
  timeoutMs?: number;
  onSign?: (event: SignEvent) => void;
  onRefusal?: (event: RefusalEvent) => void;
  logger?: Logger;
}

export interface AgentRelayCounters {
  connections: number;
  open: number;
  requests: number;
  signatures: number;
  /** Requests answered SSH_AGENT_FAILURE by the policy, by request name. */
  refused: Record<string, number>;
  /** Guest connections closed for malformed, truncated or oversized messages. */
  malformed: number;
  /** Requests answered with a failure because the host agent could not be reached or died. */
  agentUnavailable: number;
}

export interface AgentRelay {
  /** Relays one guest connection; `client` names it in logs and events. */
  handle(guest: Duplex, client?: ClientInfo): void;
  /** Replaces the policy for requests from now on. Throws AgentConfigError on a bad fingerprint. */
  setPolicy(policy: AgentPolicy): void;
  readonly policy: AgentPolicy;
  counters(): AgentRelayCounters;
  close(): void;
}

const REQUEST_NAMES: Record<number, string> = {
  [MessageType.requestIdentities]: "list",
  [MessageType.signRequest]: "sign",
  [MessageType.addIdentity]: "add",
  [MessageType.addIdConstrained]: "add",
  [MessageType.removeIdentity]: "remove",
  [MessageType.removeAllIdentities]: "remove-all",
  [MessageType.addSmartcardKey]: "add-smartcard",
  [MessageType.addSmartcardKeyConstrained]: "add-smartcard",
  [MessageType.removeSmartcardKey]: "remove-smartcard",
  [MessageType.lock]: "lock",
  [MessageType.unlock]: "unlock",
  [MessageType.extension]: "extension",
};

const SIGN_ONLY_ALLOWED = new Set<number>([MessageType.requestIdentities, MessageType.signRequest]);
/** Requests queued per connection before the guest is paused. */
const MAX_QUEUED = 8;

export function checkPolicy(policy: AgentPolicy): void {
  for (const fp of policy.keys ?? []) {
    if (!isFingerprint(fp)) {
      throw new AgentConfigError(`"${fp}" is not a key fingerprint (SHA256:... as ssh-add -l prints it)`);
    }
  }
}

export function createAgentRelay(o: AgentRelayOptions = {}): AgentRelay {
  const log = o.logger ?? silentLogger;
  const socketPath = o.socketPath ?? process.env.SSH_AUTH_SOCK;
  const timeoutMs = o.timeoutMs ?? 60_000;
  let policy: AgentPolicy = {};
  let allowedKeys: Set<string> | undefined;
  const setPolicy = (next: AgentPolicy) => {
    checkPolicy(next);
    policy = { ...next, ...(next.keys ? { keys: [...next.keys] } : {}) };
    allowedKeys = next.keys ? new Set(next.keys) : undefined;
  };
  setPolicy(o.policy ?? {});
  const counters: AgentRelayCounters = {
    connections: 0,
    open: 0,
    requests: 0,
    signatures: 0,
    refused: {},
    malformed: 0,
    agentUnavailable: 0,
  };
  const open = new Set<Duplex>();
  let lastUnavailableLog = 0;

  const connectAgent = (): Duplex => {
    if (o.connectAgent) return o.connectAgent();
    if (!socketPath) {
      const none = new net.Socket();
      process.nextTick(() => none.destroy(new Error("no host agent: SSH_AUTH_SOCK is not set")));
      return none;
    }
    return net.connect(socketPath);
  };

  /** One connection to the agent, answering one request at a time. */
  class AgentLink {
    private readonly socket: Duplex;
    private readonly reader = new MessageReader();
    private waiting: ((m: AgentMessage | Error) => void) | undefined;
    private dead: Error | undefined;

    constructor() {
      this.socket = connectAgent();
      this.socket.on("data", (chunk: Buffer) => {
        let messages: AgentMessage[];
        try {
          messages = this.reader.push(chunk);
        } catch (error) {
          return this.fail(error as Error);
        }
        for (const m of messages) {
          const w = this.waiting;
          this.waiting = undefined;
          // An answer nobody asked for: the agent is not speaking the protocol.
          if (!w) return this.fail(new AgentProtocolError("the agent answered a question nobody asked"));
          w(m);
        }
      });
      this.socket.on("error", (e) => this.fail(e));
      this.socket.on("close", () => this.fail(new Error("the agent closed the connection")));
    }

    private fail(error: Error): void {
      if (this.dead) return;
      this.dead = error;
      this.socket.destroy();
      const w = this.waiting;
      this.waiting = undefined;
      w?.(error);
    }

    get broken(): boolean {
      return this.dead !== undefined;
    }

    ask(type: number, body: Buffer): Promise<AgentMessage> {
      if (this.dead) return Promise.reject(this.dead);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => this.fail(new Error(`no answer from the agent within ${timeoutMs} ms`)),
          timeoutMs,
        );
        this.waiting = (m) => {
          clearTimeout(timer);
          if (m instanceof Error) reject(m);
          else resolve(m);
        };
        this.socket.write(encodeMessage(type, body));
      });
    }

    close(): void {
      this.dead ??= new Error("closed");
      this.socket.destroy();
    }
  }

  const refuse = (request: string, reason: RefusalEvent["reason"], client?: ClientInfo) => {
    counters.refused[request] = (counters.refused[request] ?? 0) + 1;
    o.onRefusal?.({ time: Date.now(), request, reason, ...(client ? { client } : {}) });
    log.info(
      { request, reason, client: client ? `${client.ip}:${client.port}` : undefined },
      "ssh agent request refused",
    );
    return FAILURE;
  };

  /** The answer to one request: from the agent, filtered by the policy, or the policy's own. */
  const answer = async (link: () => AgentLink, m: AgentMessage, client?: ClientInfo): Promise<Buffer> => {
    const request = REQUEST_NAMES[m.type] ?? `type-${m.type}`;
    if (policy.signOnly && !SIGN_ONLY_ALLOWED.has(m.type)) return refuse(request, "sign-only", client);
    if (m.type === MessageType.signRequest) {
      // A sign request that does not parse closes the connection (see handle), policy or not.
      const sign = parseSignRequest(m.body);
      const fp = fingerprint(sign.blob);
      const allowed = !allowedKeys || allowedKeys.has(fp);
      const event: SignEvent = {
        time: Date.now(),
        fingerprint: fp,
        keyType: keyType(sign.blob),
        allowed,
        ...(client ? { client } : {}),
      };
      o.onSign?.(event);
      log.info(
        {
          fingerprint: fp,
          keyType: event.keyType,
          client: client ? `${client.ip}:${client.port}` : undefined,
          allowed,
        },
        "ssh agent signature requested",
      );
      if (!allowed) return refuse("sign", "key-not-allowed", client);
      counters.signatures++;
    }
    let reply: AgentMessage;
    try {
      reply = await link().ask(m.type, m.body);
    } catch (error) {
      counters.agentUnavailable++;
      const now = Date.now();
      if (now - lastUnavailableLog > 10_000) {
        lastUnavailableLog = now;
        log.warn(
          { agent: socketPath, err: (error as Error).message },
          "host ssh agent unavailable: guests get SSH_AGENT_FAILURE",
        );
      }
      return FAILURE;
    }
    if (
      m.type === MessageType.requestIdentities &&
      reply.type === MessageType.identitiesAnswer &&
      allowedKeys
    ) {
      const keys = allowedKeys;
      try {
        return encodeIdentities(parseIdentities(reply.body).filter((k) => keys.has(fingerprint(k.blob))));
      } catch {
        // An agent answer that does not parse cannot be filtered: nothing is shown rather than all.
        return FAILURE;
      }
    }
    return encodeMessage(reply.type, reply.body);
  };

  return {
    get policy() {
      return policy;
    },
    setPolicy,
    handle(guest, client) {
      counters.connections++;
      counters.open++;
      open.add(guest);
      const reader = new MessageReader();
      const queue: AgentMessage[] = [];
      let busy = false;
      let agent: AgentLink | undefined;
      // A dead agent is dialled again at the next request: desktopd recovers when the agent comes back.
      const link = () => {
        if (!agent || agent.broken) agent = new AgentLink();
        return agent;
      };
      const closeAll = () => {
        agent?.close();
        guest.destroy();
      };
      guest.on("error", () => {});
      guest.on("close", () => {
        counters.open--;
        open.delete(guest);
        agent?.close();
      });
      const drain = async () => {
        if (busy) return;
        busy = true;
        try {
          while (queue.length > 0 && !guest.destroyed) {
            const m = queue.shift()!;
            counters.requests++;
            let reply: Buffer;
            try {
              reply = await answer(link, m, client);
            } catch (error) {
              counters.malformed++;
              log.info(
                { client: client ? `${client.ip}:${client.port}` : undefined, err: (error as Error).message },
                "ssh agent: malformed request, connection closed",
              );
              closeAll();
              return;
            }
            if (!guest.write(reply)) await new Promise((r) => guest.once("drain", r));
            if (queue.length < MAX_QUEUED / 2) guest.resume();
          }
        } finally {
          busy = false;
        }
      };
      guest.on("data", (chunk: Buffer) => {
        try {
          queue.push(...reader.push(chunk));
        } catch (error) {
          counters.malformed++;
          log.info(
            { client: client ? `${client.ip}:${client.port}` : undefined, err: (error as Error).message },
            "ssh agent: malformed message, connection closed",
          );
          closeAll();
          return;
        }
        if (queue.length >= MAX_QUEUED) guest.pause();
        void drain();
      });
    },
    counters: () => ({ ...counters, refused: { ...counters.refused } }),
    close() {
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}
