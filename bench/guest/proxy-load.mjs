// Runs in the guest netns (through desktopd's proxy) or on the host (straight to tinyproxy):
// `node proxy-load.mjs PROXY_HOST PROXY_PORT TARGET_HOST TARGET_PORT SECONDS MODE CONCURRENCY`.
// MODE requests: CONCURRENCY loops each send GET http://TARGET/small through the proxy on a new
//   connection and read the answer, for SECONDS; reports requests per second.
// MODE tunnel: one CONNECT TARGET tunnel, then GET /bytes over it for SECONDS; reports Mbit/s.
// Prints one JSON line.
import http from "node:http";
import net from "node:net";

const [proxyHost, proxyPortArg, targetHost, targetPortArg, secondsArg, mode, concurrencyArg] =
  process.argv.slice(2);
const proxyPort = Number(proxyPortArg);
const targetPort = Number(targetPortArg);
const seconds = Number(secondsArg);
const concurrency = Number(concurrencyArg ?? 1);
const deadline = Date.now() + seconds * 1000;
let firstError;

setTimeout(
  () => {
    console.log(JSON.stringify({ error: `hard timeout${firstError ? ` (${firstError})` : ""}` }));
    process.exit(1);
  },
  seconds * 1000 + 15_000,
).unref();

function request() {
  return new Promise((resolve) => {
    const req = http.request({
      host: proxyHost,
      port: proxyPort,
      path: `http://${targetHost}:${targetPort}/small`,
      agent: false,
      headers: { connection: "close" },
    });
    req.setTimeout(5000, () => req.destroy(new Error("request timeout")));
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
      res.on("error", () => resolve(false));
    });
    req.on("error", (err) => {
      firstError ??= err.message;
      resolve(false);
    });
    req.end();
  });
}

async function requests() {
  let done = 0;
  let errors = 0;
  const start = process.hrtime.bigint();
  const loop = async () => {
    while (Date.now() < deadline) {
      if (await request()) done++;
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  return { requests: done, errors, seconds: elapsed, perSecond: done / elapsed, firstError };
}

function tunnel() {
  return new Promise((resolve) => {
    const socket = net.connect(proxyPort, proxyHost);
    socket.setNoDelay(true);
    let head = Buffer.alloc(0);
    let bytes = 0;
    let started;
    const finish = (error) => {
      socket.destroy();
      if (error) return resolve({ error });
      const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
      resolve({ bytes, seconds: elapsed, mbps: (bytes * 8) / elapsed / 1e6 });
    };
    socket.on("error", (err) => finish(err.message));
    socket.on("connect", () =>
      socket.write(
        `CONNECT ${targetHost}:${targetPort} HTTP/1.1\r\nHost: ${targetHost}:${targetPort}\r\n\r\n`,
      ),
    );
    const onHead = (chunk) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      if (end < 0) return;
      if (!/^HTTP\/1\.[01] 200/.test(head.toString("latin1", 0, 20)))
        return finish(`CONNECT: ${head.toString("latin1", 0, 40)}`);
      socket.off("data", onHead);
      socket.write(`GET /bytes HTTP/1.1\r\nHost: ${targetHost}\r\n\r\n`);
      started = process.hrtime.bigint();
      socket.on("data", (b) => {
        bytes += b.length;
        if (Date.now() >= deadline) finish();
      });
      setTimeout(() => finish(), seconds * 1000);
    };
    socket.on("data", onHead);
  });
}

const report = mode === "tunnel" ? await tunnel() : await requests();
console.log(JSON.stringify(report));
process.exit(0);
