/** Runs iproute2's `ip`, the one system tool desktopd drives, turning failures into typed errors. */
import { execFile } from "node:child_process";
import { GuestConfigError } from "./errors.js";

export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("ip", args, { encoding: "utf8" }, (error, stdout, stderr) => {
      if (!error) {
        resolve(stdout);
        return;
      }
      const detail = (stderr.trim() || error.message).split("\n")[0];
      reject(new GuestConfigError(`ip ${args.join(" ")}: ${detail}`));
    });
  });
}
