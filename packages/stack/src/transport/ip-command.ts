/** Configures links with iproute2's `ip`, the one tool every Linux host has for netns and links. */
import { execFile } from "node:child_process";
import { TransportError } from "../errors.js";

export interface IpResult {
  ok: boolean;
  stderr: string;
}

/** Runs `ip [-n netns] args...`; never throws for a non-zero exit, only when `ip` cannot be run. */
export function runIp(netns: string | undefined, args: readonly string[]): Promise<IpResult> {
  const argv = netns === undefined ? [...args] : ["-n", netns, ...args];
  return new Promise((resolve, reject) => {
    execFile("ip", argv, { timeout: 10_000 }, (error, _stdout, stderr) => {
      if (error && typeof (error as NodeJS.ErrnoException).code === "string") {
        reject(new TransportError(`cannot run ip: ${error.message}`, { cause: error }));
        return;
      }
      resolve({ ok: !error, stderr: String(stderr).trim() });
    });
  });
}

/** Runs `ip` and turns a failure into a TransportError naming what was being done. */
export async function ipOrThrow(
  netns: string | undefined,
  args: readonly string[],
  what: string,
): Promise<void> {
  const { ok, stderr } = await runIp(netns, args);
  if (!ok) throw new TransportError(`${what}: ip ${args.join(" ")}: ${stderr || "failed"}`);
}
