/** Runs the CLI in-process and collects what it prints (paths that end before the system is touched). */
import type { CliIo } from "../../src/commands/io.js";
import { runCli } from "../../src/program.js";

export async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: CliIo = {
    out: (text) => {
      out += text;
    },
    err: (text) => {
      err += text;
    },
  };
  const code = await runCli(argv, io);
  return { code, out, err };
}
