// Runs inside the guest netns: `node flows.mjs HOST PORT COUNT SECONDS` (with `ulimit -n` raised).
// Opens COUNT TCP connections to HOST:PORT (64 connects in flight at most), keeps them open and
// idle, and prints one JSON line: { opened, errors, seconds }. On the line "busy" on stdin every
// connection writes 64 KiB at a time (the next once the last has drained) for SECONDS, all at
// once; then it prints { bytes, seconds, errors } (bytes handed to the kernel) and closes them all.
import net from "node:net";

const [host, portArg, countArg, secondsArg] = process.argv.slice(2);
const port = Number(portArg);
const count = Number(countArg);
const seconds = Number(secondsArg);
const inFlight = 64;
const chunk = Buffer.alloc(64 * 1024, 0x2a);

let errors = 0;
let firstError;
const sockets = [];

function print(out) {
  if (firstError) out.firstError = firstError;
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function fail(error) {
  print({ error });
  process.exit(0);
}

// Nothing may hold the run open: connecting, idling and the busy phase are all bounded.
setTimeout(() => fail("guest flows hard timeout"), (seconds + 90) * 1000).unref();

function onError(err) {
  errors++;
  firstError ??= err.message;
}

function open() {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(10_000, () => s.destroy(new Error("connect timeout")));
    s.on("error", onError);
    s.once("connect", () => {
      s.setTimeout(0);
      sockets.push(s);
      resolve();
    });
    s.once("close", resolve);
  });
}

async function openAll() {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      next++;
      await open();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

let bytes = 0;

async function pump(s, deadline) {
  while (Date.now() < deadline && !s.destroyed) {
    await new Promise((resolve) => {
      const ok = s.write(chunk, (err) => {
        if (!err) bytes += chunk.length;
      });
      if (ok) setImmediate(resolve);
      else {
        s.once("drain", resolve);
        s.once("close", resolve);
      }
    });
  }
}

const started = process.hrtime.bigint();
const elapsed = (since) => Number(process.hrtime.bigint() - since) / 1e9;
await openAll();
print({ opened: sockets.length, errors, seconds: elapsed(started) });

process.stdin.setEncoding("utf8");
process.stdin.on("data", async (line) => {
  if (!line.includes("busy")) return;
  const busy = process.hrtime.bigint();
  const deadline = Date.now() + seconds * 1000;
  // Ends at the deadline even with writes still queued (the peer may drain 1000 × 64 KiB slowly).
  const end = new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  await Promise.race([Promise.all(sockets.map((s) => pump(s, deadline))), end]);
  print({ bytes, errors, seconds: elapsed(busy) });
  for (const s of sockets) s.destroy();
  process.exit(0);
});
