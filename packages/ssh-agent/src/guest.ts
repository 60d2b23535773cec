/**
 * The guest side: a unix socket at `/run/host-services/ssh-auth.sock` (Docker Desktop's path)
 * whose every connection is carried over TCP to desktopd's relay on the gateway. Node built-ins
 * only, so the bundled `desktopd-ssh-agent` runs in any guest that has Node; `guestCommand()`
 * prints the socat line for guests without it.
 */
import { chmodSync, existsSync, lstatSync, mkdirSync, rmSync } from "node:fs";
import net from "node:net";
import { dirname } from "node:path";

/** Docker Desktop's path for the forwarded agent, inside the VM and in containers that mount it. */
export const GUEST_SOCKET = "/run/host-services/ssh-auth.sock";
/** The relay's port on desktopd's gateway (served in-process: no host port is opened). */
export const SSH_AGENT_PORT = 6022;
export const DEFAULT_GATEWAY = "192.168.65.1";
/** Any user of the guest may use the agent, as with `ssh -A` to a shared host (narrow it with `mode`). */
export const DEFAULT_MODE = 0o666;

export interface GuestRelayOptions {
  socket?: string;
  host?: string;
  port?: number;
  mode?: number;
}

export interface GuestRelay {
  readonly socket: string;
  readonly target: string;
  /** Stops listening, ends the connections and removes the socket file. */
  close(): Promise<void>;
}

/** Whether something accepts connections at `path` (a live relay, not a stale socket file). */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
}

export async function startGuestRelay(o: GuestRelayOptions = {}): Promise<GuestRelay> {
  const socket = o.socket ?? GUEST_SOCKET;
  const host = o.host ?? DEFAULT_GATEWAY;
  const port = o.port ?? SSH_AGENT_PORT;
  const mode = o.mode ?? DEFAULT_MODE;
  mkdirSync(dirname(socket), { recursive: true, mode: 0o755 });
  if (existsSync(socket)) {
    if (!lstatSync(socket).isSocket()) throw new Error(`${socket} exists and is not a socket`);
    if (await answers(socket)) throw new Error(`${socket} is served already`);
    rmSync(socket, { force: true });
  }
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(port, host);
    open.add(client);
    open.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socket, () => {
      server.off("error", reject);
      resolve();
    });
  });
  chmodSync(socket, mode);
  return {
    socket,
    target: `${host}:${port}`,
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(socket, { force: true });
    },
  };
}

/** The same relay as one shell line, for guests without Node: socat, forking per connection. */
export function guestCommand(o: GuestRelayOptions = {}): string {
  const socket = o.socket ?? GUEST_SOCKET;
  const host = o.host ?? DEFAULT_GATEWAY;
  const port = o.port ?? SSH_AGENT_PORT;
  const mode = (o.mode ?? DEFAULT_MODE).toString(8);
  return `mkdir -p ${dirname(socket)} && socat UNIX-LISTEN:${socket},fork,unlink-early,mode=${mode} TCP:${host}:${port}`;
}
