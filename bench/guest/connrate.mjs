// Runs inside the guest netns: `node connrate.mjs HOST PORT SECONDS CONCURRENCY [WARMUP]`.
// CONCURRENCY loops each open a TCP connection, close it as soon as it is established, wait for
// the close to complete, and start over, for WARMUP seconds (default 0) not counted, then for
// SECONDS counted. The warm-up lets this client and the peer's compilers settle, so the figure
// is a running peer's, not a fresh one's. Prints one JSON line.
import net from "node:net";

const [host, portArg, secondsArg, concurrencyArg, warmupArg] = process.argv.slice(2);
const port = Number(portArg);
const seconds = Number(secondsArg);
const concurrency = Number(concurrencyArg);
const warmup = Number(warmupArg ?? 0);

let connections = 0;
let errors = 0;
let firstError;
let start = process.hrtime.bigint();
const warmUntil = Date.now() + warmup * 1000;
const deadline = warmUntil + seconds * 1000;

// A connection that never completes must not hold the run open.
setTimeout(() => report("guest connrate hard timeout"), (warmup + seconds) * 1000 + 5000).unref();
if (warmup > 0) {
  // What the warm-up did is forgotten: the counts and the clock start again.
  setTimeout(() => {
    connections = 0;
    errors = 0;
    firstError = undefined;
    start = process.hrtime.bigint();
  }, warmup * 1000);
}

function once() {
  return new Promise((resolve) => {
    let failed = false;
    const s = net.connect({ host, port });
    s.setTimeout(3000, () => s.destroy(new Error("connect/close timeout")));
    s.on("connect", () => s.end());
    s.resume();
    s.on("error", (err) => {
      failed = true;
      errors++;
      firstError ??= err.message;
    });
    s.on("close", () => {
      if (!failed) connections++;
      resolve(failed);
    });
  });
}

async function loop() {
  while (Date.now() < deadline) {
    // Back off after an error so a refused port does not spin.
    if (await once()) await new Promise((r) => setTimeout(r, 50));
  }
}

function report(error) {
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  const out = { connections, errors, seconds: elapsed, perSecond: connections / elapsed };
  if (firstError) out.firstError = firstError;
  if (error) out.error = error;
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

await Promise.all(Array.from({ length: concurrency }, loop));
report();
