/** TCP servers on the host's loopback (127.0.0.1 or ::1) that the guest scripts dial through each peer. */
import net from "node:net";
import { type Family, loopbackOf } from "../family.js";

export interface HostServer {
  port: number;
  close(): Promise<void>;
}

function listen(server: net.Server, family: Family): Promise<HostServer> {
  const sockets = new Set<net.Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: loopbackOf(family), port: 0, backlog: 1024 }, () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Accepts, discards input, and closes its side once the client has closed (client closes first). */
export function startAcceptCloseServer(family: Family): Promise<HostServer> {
  return listen(
    net.createServer((s) => {
      s.on("error", () => {});
      s.resume();
      s.on("end", () => s.end());
    }),
    family,
  );
}

/** Echoes every byte back immediately (Nagle off). */
export function startEchoServer(family: Family): Promise<HostServer> {
  return listen(
    net.createServer((s) => {
      s.setNoDelay(true);
      s.on("error", () => {});
      s.on("data", (d) => s.write(d));
    }),
    family,
  );
}

/** A port that was free on the family's loopback a moment ago (for iperf3, which cannot report its own). */
export async function freePort(family: Family = 4): Promise<number> {
  const srv = await listen(net.createServer(), family);
  await srv.close();
  return srv.port;
}
