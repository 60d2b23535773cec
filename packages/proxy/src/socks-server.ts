/**
 * A SOCKS5 server (CONNECT only) whose dialer is the embedder's: in desktopd it reaches guest
 * addresses through the stack, so the host reaches a guest or container address without
 * publishing a port (`curl --socks5-hostname 127.0.0.1:1080 http://GUEST_IP:8000/`). Each client
 * is a state machine over bytes with a bounded buffer and a deadline; whatever it sends, it is
 * answered with SOCKS5's reply code and only its own connection is closed.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "@desktopd/core";
import { ProxyError } from "./errors.js";
import {
  Command,
  emitAuthResult,
  emitMethodChoice,
  emitReply,
  Method,
  parseGreeting,
  parsePasswordAuth,
  parseRequest,
  Reply,
  type SocksRequest,
} from "./socks5-wire.js";
import { splice } from "./tunnel.js";

export type SocksRefusalReason = "not-allowed" | "refused" | "unreachable" | "timeout";

/** Thrown by a dialer: the client is answered with the matching SOCKS5 reply. */
export class SocksRefusal extends ProxyError {
  override readonly code = "ERR_DESKTOPD_PROXY_SOCKS_REFUSED";
  constructor(
    readonly reason: SocksRefusalReason,
    message: string,
  ) {
    super(message);
  }
  static override isInstance(value: unknown): value is SocksRefusal {
    return ProxyError.isInstance(value) && value.code === "ERR_DESKTOPD_PROXY_SOCKS_REFUSED";
  }
}

export type SocksDial = (host: string, port: number, kind: SocksRequest["kind"]) => Promise<Duplex>;

export interface SocksServerOptions {
  dial: SocksDial;
  /** RFC 1929 username and password the clients must give; without it, no authentication. */
  auth?: { username: string; password: string };
  /** Bound on the handshake and on the dial, ms (default 10 000). */
  timeoutMs?: number;
  /** Clients served at once (default 512); beyond it a new one is closed at once and counted ("busy"). */
  maxConnections?: number;
  logger?: Logger;
}

export interface SocksCounters {
  connections: number;
  /** Tunnels opened. */
  connected: number;
  /** Clients turned away, by why ("auth", "protocol", "command", "not-allowed", "refused"...). */
  refused: Record<string, number>;
}

export interface SocksServer {
  /** Serves one client connection. */
  handle(socket: Duplex): void;
  /** Listens on `host:port` (port 0: any free one); resolves with the address bound. */
  listen(host: string, port: number): Promise<{ host: string; port: number }>;
  counters(): SocksCounters;
  /** Stops listening and ends every connection. */
  close(): Promise<void>;
}

/** No handshake message is longer: 2 + 255 methods, 3 + 255 + 255 credentials, 7 + 255 request. */
const MAX_HANDSHAKE_BYTES = 600;

const REPLY_OF: Record<SocksRefusalReason, number> = {
  "not-allowed": Reply.notAllowed,
  refused: Reply.connectionRefused,
  unreachable: Reply.hostUnreachable,
  timeout: Reply.ttlExpired,
};

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

export function createSocksServer(o: SocksServerOptions): SocksServer {
  const timeoutMs = o.timeoutMs ?? 10_000;
  const counters: SocksCounters = { connections: 0, connected: 0, refused: {} };
  const open = new Set<Duplex>();
  const maxConnections = o.maxConnections ?? 512;
  let clients = 0;
  let server: net.Server | undefined;
  const expected = o.auth ? { user: digest(o.auth.username), pass: digest(o.auth.password) } : undefined;

  /** Answers (if there is an answer), closes and counts; false, so a handshake step can return it. */
  const refuse = (socket: Duplex, why: string, answer?: Buffer): false => {
    counters.refused[why] = (counters.refused[why] ?? 0) + 1;
    if (answer && socket.writable) socket.end(answer);
    else socket.destroy();
    // A client that does not close after the answer is not waited for.
    setTimeout(() => socket.destroy(), 1000).unref();
    return false;
  };

  const handle = (socket: Duplex) => {
    counters.connections++;
    if (clients >= maxConnections) {
      counters.refused.busy = (counters.refused.busy ?? 0) + 1;
      socket.on("error", () => {});
      socket.destroy();
      return;
    }
    clients++;
    socket.on("close", () => clients--);
    open.add(socket);
    socket.on("close", () => open.delete(socket));
    socket.on("error", () => {});
    let stage: "greeting" | "auth" | "request" | "dialling" = "greeting";
    let buffered: Buffer = Buffer.alloc(0);
    const deadline = setTimeout(() => refuse(socket, "timeout"), timeoutMs);
    socket.on("close", () => clearTimeout(deadline));

    /** Handles the next whole message; true when another may follow in what is buffered. */
    const step = (): boolean => {
      if (stage === "greeting") {
        const r = parseGreeting(buffered);
        if ("more" in r) return false;
        if ("error" in r) return refuse(socket, "protocol");
        buffered = buffered.subarray(r.used);
        const wanted = expected ? Method.password : Method.none;
        if (!r.value.methods.includes(wanted)) {
          return refuse(socket, "auth", emitMethodChoice(Method.noneAcceptable));
        }
        socket.write(emitMethodChoice(wanted));
        stage = expected ? "auth" : "request";
        return true;
      }
      if (stage === "auth") {
        const r = parsePasswordAuth(buffered);
        if ("more" in r) return false;
        if ("error" in r) return refuse(socket, "protocol");
        buffered = buffered.subarray(r.used);
        // Both compared whole, in constant time, whatever the first mismatch.
        const userOk = timingSafeEqual(digest(r.value.username), expected!.user);
        const passOk = timingSafeEqual(digest(r.value.password), expected!.pass);
        if (!(userOk && passOk)) return refuse(socket, "auth", emitAuthResult(false));
        socket.write(emitAuthResult(true));
        stage = "request";
        return true;
      }
      if (stage === "request") {
        const r = parseRequest(buffered);
        if ("more" in r) return false;
        if ("error" in r) {
          return refuse(socket, "protocol", "reply" in r ? emitReply(r.reply) : undefined);
        }
        if (r.value.command !== Command.connect) {
          return refuse(socket, "command", emitReply(Reply.commandNotSupported));
        }
        stage = "dialling";
        const rest = buffered.subarray(r.used);
        buffered = Buffer.alloc(0);
        socket.off("data", onData);
        socket.pause();
        connect(socket, r.value, rest);
      }
      return false;
    };

    const onData = (chunk: Buffer) => {
      // Turned away already: what it still sends is not read.
      if (!socket.writable) return;
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      if (buffered.length > MAX_HANDSHAKE_BYTES) return void refuse(socket, "protocol");
      while (step()) {}
    };

    const connect = (client: Duplex, request: SocksRequest, early: Buffer) => {
      let timedOut = false;
      const dialTimer = setTimeout(() => {
        timedOut = true;
        refuse(client, "timeout", emitReply(Reply.ttlExpired));
      }, timeoutMs);
      o.dial(request.host, request.port, request.kind).then(
        (remote) => {
          clearTimeout(dialTimer);
          clearTimeout(deadline);
          if (client.destroyed) {
            remote.destroy();
            return;
          }
          counters.connected++;
          client.write(emitReply(Reply.succeeded));
          if (early.length > 0) remote.write(early);
          splice(client, remote, open);
          client.resume();
        },
        (error: unknown) => {
          clearTimeout(dialTimer);
          if (timedOut) return;
          const reason = SocksRefusal.isInstance(error) ? error.reason : undefined;
          o.logger?.debug(
            { to: `${request.host}:${request.port}`, err: (error as Error).message },
            "socks5 dial failed",
          );
          refuse(client, reason ?? "failed", emitReply(reason ? REPLY_OF[reason] : Reply.generalFailure));
        },
      );
    };

    socket.on("data", onData);
  };

  return {
    handle,
    async listen(host, port) {
      const s = net.createServer(handle);
      await new Promise<void>((resolve, reject) => {
        s.once("error", reject);
        s.listen(port, host, () => {
          s.off("error", reject);
          resolve();
        });
      });
      server = s;
      const bound = s.address() as net.AddressInfo;
      return { host: bound.address, port: bound.port };
    },
    counters: () => ({ ...counters, refused: { ...counters.refused } }),
    async close() {
      for (const s of open) s.destroy();
      open.clear();
      const s = server;
      server = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
