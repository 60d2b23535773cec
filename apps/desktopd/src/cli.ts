#!/usr/bin/env node
/** The `desktopd` executable. Exits explicitly so a lingering handle can never keep it alive after cleanup. */

// Each unix datagram socket keeps one libuv worker in a blocking receive; host DNS lookups and
// file I/O share the rest. Set before anything starts the pool (it is sized on first use).
process.env.UV_THREADPOOL_SIZE ??= "16";
const { runCli } = await import("./program.js");

process.exit(await runCli(process.argv.slice(2)));
