/** Talks to a running daemon's control API (see server.ts) for `desktopd status` and `desktopd publish`. */
import { request } from "node:http";
import { ControlError } from "../errors.js";

export function controlRequest(
  socketPath: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path,
        host: "desktopd",
        headers: payload
          ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
          : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch {
            reject(
              new ControlError(`${socketPath}: the daemon's answer is not JSON (HTTP ${res.statusCode})`),
            );
            return;
          }
          if ((res.statusCode ?? 500) >= 400) {
            const error = new ControlError((parsed as { error?: string }).error ?? `HTTP ${res.statusCode}`);
            error.status = res.statusCode;
            reject(error);
            return;
          }
          resolve(parsed);
        });
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) => {
      const why =
        error.code === "ENOENT" || error.code === "ECONNREFUSED"
          ? "no desktopd is running there (start one with `desktopd run`, or name its socket with --control)"
          : error.message;
      reject(new ControlError(`${socketPath}: ${why}`));
    });
    req.end(payload);
  });
}
