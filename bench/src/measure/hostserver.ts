/** TCP servers on the host's 127.0.0.1 that the guest scripts dial through each peer. */
import net from "node:net";

export interface HostServer {
  port: number;
  close(): Promise<void>;
}

function listen(server: net.Server): Promise<HostServer> {
  const sockets = new Set<net.Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, backlog: 1024 }, () => {
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
export function startAcceptCloseServer(): Promise<HostServer> {
  return listen(
    net.createServer((s) => {
      s.on("error", () => {});
      s.resume();
      s.on("end", () => s.end());
    }),
  );
}

/** Echoes every byte back immediately (Nagle off). */
export function startEchoServer(): Promise<HostServer> {
  return listen(
    net.createServer((s) => {
      s.setNoDelay(true);
      s.on("error", () => {});
      s.on("data", (d) => s.write(d));
    }),
  );
}

/** A port that was free on 127.0.0.1 a moment ago (for iperf3, which cannot report its own). */
export async function freePort(): Promise<number> {
  const srv = await listen(net.createServer());
  await srv.close();
  return srv.port;
}
