/**
 * qemu's stream netdev: `-netdev stream` (qemu 7.2+) and the older `-netdev socket`, frames with
 * a 4-byte length prefix over a unix or TCP socket. desktopd either listens (qemu connects with
 * `server=off`) or connects to a qemu that listens (`server=on`), reconnecting when qemu restarts.
 */

import { chmodSync, existsSync, lstatSync, rmSync } from "node:fs";
import * as net from "node:net";
import type { FrameTransport } from "@desktopd/core";
import { type Clock, systemClock, type Timer } from "@desktopd/core";
import { TransportError } from "../errors.js";
import { type StreamTransportOptions, streamTransport } from "./stream.js";

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_UNIX_PATH = 107;

/** A unix socket path, or a TCP host and port. */
export type StreamAddress = { path: string } | { host: string; port: number };

export type QemuStreamOptions = Omit<StreamTransportOptions, "name">;

export interface QemuListenOptions extends QemuStreamOptions {
  /** Links at once (default 64): every connection is a port on the switch; beyond, new ones are closed. */
  maxLinks?: number;
}

export interface QemuStreamListener {
  /** Where qemu connects: the path, or "host:port" with the port actually bound. */
  readonly address: StreamAddress;
  close(): Promise<void>;
}

/** Parses "PATH", "unix:PATH", "tcp:HOST:PORT" or "HOST:PORT" (a bare path contains a "/"). */
export function parseStreamAddress(text: string): StreamAddress | undefined {
  if (text.startsWith("unix:")) return text.length > 5 ? { path: text.slice(5) } : undefined;
  const tcp = /^(?:tcp:)?(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (tcp && !text.includes("/")) {
    const port = Number(tcp[2]);
    if (port > 65_535) return undefined;
    return { host: tcp[1]!.replace(/^\[|\]$/g, ""), port };
  }
  return text.includes("/") || !text.includes(":") ? { path: text } : undefined;
}

export function formatStreamAddress(a: StreamAddress): string {
  if ("path" in a) return a.path;
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Listens for qemu; every connection is a new link (qemu restarts, or several VMs). */
export async function listenQemuStream(
  address: StreamAddress,
  onLink: (link: FrameTransport) => void,
  { maxLinks = 64, ...options }: QemuListenOptions = {},
): Promise<QemuStreamListener> {
  let label = formatStreamAddress(address);
  checkPathLength(address);
  if ("path" in address && existsSync(address.path)) {
    // Only a socket is ours to replace: a mistyped path must not delete someone's file.
    if (!lstatSync(address.path).isSocket())
      throw new TransportError(`${address.path} exists and is not a socket`);
    if (await isListening(address.path))
      throw new TransportError(`${address.path} is in use by another process`);
    rmSync(address.path, { force: true });
  }
  const server = net.createServer({ noDelay: true });
  server.maxConnections = maxLinks;
  let count = 0;
  const links = new Set<FrameTransport>();
  server.on("connection", (socket) => {
    // Until the link starts, an early reset must not be an unhandled error.
    socket.on("error", () => {});
    const link = streamTransport(socket, socket, {
      ...options,
      name: `qemu:${label}#${++count}`,
      ownsSocket: true,
      onClosed: () => links.delete(link),
    });
    links.add(link);
    // A link never started keeps the socket it was given, and only that socket hears the close.
    socket.once("close", () => links.delete(link));
    onLink(link);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(new TransportError(`cannot listen on ${label}: ${(error as Error).message}`)),
    );
    if ("path" in address) server.listen(address.path, resolve);
    else server.listen(address.port, address.host, resolve);
  });
  if ("path" in address) {
    // Whoever may connect may put frames on the guests' network: the owner only, whatever the umask.
    try {
      chmodSync(address.path, 0o600);
    } catch (error) {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      throw new TransportError(`cannot secure ${label}: ${(error as Error).message}`, { cause: error });
    }
  }
  // Once listening, errors are failed accepts (out of descriptors): the next connection may work.
  server.on("error", () => {});
  const bound = server.address();
  const actual: StreamAddress =
    "path" in address || !bound || typeof bound === "string"
      ? address
      : { host: address.host, port: bound.port };
  // Links are named after the port actually bound (port 0 asks for any).
  label = formatStreamAddress(actual);
  return {
    address: actual,
    async close() {
      // Stop accepting first: a connection accepted while the links close would never be closed.
      // libuv unlinks the socket file itself; removing the path again could hit a successor's socket.
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await Promise.all([...links].map((link) => link.close()));
      await stopped;
    },
  };
}

export interface QemuStreamConnector {
  close(): Promise<void>;
}

/**
 * Connects to a qemu listening with `server=on`, and again whenever the link drops (qemu
 * restarted), every `retryMs` until it answers.
 */
export function connectQemuStream(
  address: StreamAddress,
  onLink: (link: FrameTransport) => void,
  options: QemuStreamOptions & { retryMs?: number; clock?: Clock } = {},
): QemuStreamConnector {
  checkPathLength(address);
  const label = formatStreamAddress(address);
  const retryMs = options.retryMs ?? 1000;
  const clock = options.clock ?? systemClock;
  let stopped = false;
  let timer: Timer | undefined;
  /** The socket being connected, or the link made of it. */
  let current: { socket: net.Socket; link?: FrameTransport } | undefined;
  let count = 0;
  const attempt = () => {
    if (stopped) return;
    const socket = "path" in address ? net.connect(address.path) : net.connect(address.port, address.host);
    const entry: { socket: net.Socket; link?: FrameTransport } = { socket };
    current = entry;
    socket.setNoDelay(true);
    let ended = false;
    // Once per attempt: the socket's close (refused, or a link never started) or the link's.
    const retry = () => {
      if (ended) return;
      ended = true;
      if (current === entry) current = undefined;
      if (!stopped) timer = clock.setTimer(attempt, retryMs);
    };
    socket.once("connect", () => {
      entry.link = streamTransport(socket, socket, {
        ...options,
        name: `qemu:${label}#${++count}`,
        ownsSocket: true,
        onClosed: retry,
      });
      onLink(entry.link);
    });
    socket.once("close", retry);
    // Refused or reset: "close" follows and schedules the next attempt.
    socket.on("error", () => {});
  };
  attempt();
  return {
    async close() {
      stopped = true;
      timer?.cancel();
      const last = current;
      if (last?.link) await last.link.close();
      else last?.socket.destroy();
    },
  };
}

/** Node binds or connects to a longer path cut short: a name nobody uses, and nobody removes. */
function checkPathLength(address: StreamAddress): void {
  if ("path" in address && (address.path.length === 0 || Buffer.byteLength(address.path) > MAX_UNIX_PATH))
    throw new TransportError(`unix socket path must be 1..${MAX_UNIX_PATH} bytes: ${address.path}`);
}

function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}
