#!/usr/bin/env node
/** The `desktopd` executable. Exits explicitly so a lingering handle can never keep it alive after cleanup. */
import { runCli } from "./program.js";

process.exit(await runCli(process.argv.slice(2)));
