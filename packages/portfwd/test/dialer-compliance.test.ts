/** The socket dialer runs the shared Dialer compliance suite against echo servers on loopback. */
import dgram from "node:dgram";
import { once } from "node:events";
import net from "node:net";
import { dialerCompliance } from "@desktopd/core/testing";
import { createSocketDialer } from "../src/dialer.js";

dialerCompliance("host sockets (createSocketDialer)", async () => {
  const tcp = net.createServer({ allowHalfOpen: true }, (s) => s.on("error", () => {}).pipe(s));
  tcp.listen(0, "127.0.0.1");
  await once(tcp, "listening");
  const udp = dgram.createSocket("udp4");
  udp.on("message", (m, r) => udp.send(m, r.port, r.address));
  udp.bind(0, "127.0.0.1");
  await once(udp, "listening");
  const closed = net.createServer();
  closed.listen(0, "127.0.0.1");
  await once(closed, "listening");
  const closedPort = (closed.address() as net.AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  return {
    dialer: createSocketDialer(),
    ip: "127.0.0.1",
    echoPort: (tcp.address() as net.AddressInfo).port,
    udpEchoPort: udp.address().port,
    closedPort,
    close: async () => {
      tcp.close();
      udp.close();
    },
  };
});
