#!/usr/bin/env node
// Committed so that npm links the command at install, before the first build: it loads the build.
import { existsSync } from "node:fs";

const cli = new URL("../dist/guest-cli.js", import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write("desktopd-ssh-agent: not built yet; run `npm run build` in the repository first\n");
  process.exit(1);
}
await import(cli.href);
