// Runs inside the guest netns: `node rr.mjs HOST PORT SECONDS [WARMUP]`.
// One TCP connection (Nagle off); sends 1 byte, waits for the 1-byte echo, repeats for SECONDS
// (at most 200 000 round trips) after a warm-up of 200 rounds and WARMUP seconds (default 0),
// whichever ends last. Prints one JSON line with the median and 99th percentile round trip in
// microseconds.
import net from "node:net";

const [host, portArg, secondsArg, warmupArg] = process.argv.slice(2);
const port = Number(portArg);
const seconds = Number(secondsArg);
const warmupSeconds = Number(warmupArg ?? 0);
const warmupRounds = 200;
const maxSamples = 200_000;

function fail(error) {
  process.stdout.write(`${JSON.stringify({ error })}\n`);
  process.exit(0);
}

setTimeout(() => fail("guest rr hard timeout"), (warmupSeconds + seconds) * 1000 + 8000).unref();

const s = net.connect({ host, port });
s.setNoDelay(true);
s.setTimeout(3000, () => fail("no echo within 3 s"));
s.on("error", (err) => fail(err.message));

const samples = [];
let rounds = 0;
let sentAt = 0n;
let warmUntil = 0;
let deadline = 0;
let measuring = false;
const payload = Buffer.from([0x2a]);

function ping() {
  sentAt = process.hrtime.bigint();
  s.write(payload);
}

s.on("connect", () => {
  warmUntil = Date.now() + warmupSeconds * 1000;
  ping();
});

s.on("data", (d) => {
  // Each byte is one completed round trip; coalesced echoes (rare) count once.
  if (d.length === 0) return;
  const rtt = Number(process.hrtime.bigint() - sentAt) / 1000;
  rounds++;
  if (measuring) samples.push(rtt);
  else if (rounds >= warmupRounds && Date.now() >= warmUntil) {
    measuring = true;
    deadline = Date.now() + seconds * 1000;
  }
  if ((measuring && Date.now() >= deadline) || samples.length >= maxSamples) return finish();
  ping();
});

function finish() {
  s.destroy();
  if (samples.length === 0) fail("no samples");
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  const round = (x) => Math.round(x * 10) / 10;
  process.stdout.write(
    `${JSON.stringify({ samples: samples.length, medianUs: round(at(0.5)), p99Us: round(at(0.99)) })}\n`,
  );
  process.exit(0);
}
