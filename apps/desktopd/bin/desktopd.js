#!/usr/bin/env -S node --max-semi-space-size=4
// V8's young generation kept to 3 × 4 MiB: under load it grows to 48 MiB and is never given
// back, 10–15 MiB of a busy daemon's RSS; throughput and latency measured the same either way.
// Committed so that npm links the command at install, before the first build: it loads the build.
import { existsSync } from "node:fs";

const cli = new URL("../dist/cli.js", import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write("desktopd: not built yet; run `npm run build` in the repository first\n");
  process.exit(1);
}
await import(cli.href);
