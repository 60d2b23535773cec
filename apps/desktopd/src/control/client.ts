/** Talks to a running daemon's control API (see server.ts) for `desktopd status`, `publish`, `dns` and `events`. */
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
    req.on("error", (error) => reject(connectError(socketPath, error)));
    req.end(payload);
  });
}

/** GET `path` as text (the Prometheus exposition). */
export function controlText(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, method: "GET", path, host: "desktopd" }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (d: string) => {
        text += d;
      });
      res.on("end", () =>
        (res.statusCode ?? 500) >= 400
          ? reject(new ControlError(`${socketPath}: HTTP ${res.statusCode} for ${path}`))
          : resolve(text),
      );
    });
    req.on("error", (error) => reject(connectError(socketPath, error)));
    req.end();
  });
}

/**
 * Follows GET /v1/events: calls `onEvent` with each line until the daemon goes away (resolves)
 * or `signal` aborts (resolves too); rejects when no daemon answers.
 */
export function watchEvents(
  socketPath: string,
  onEvent: (line: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath, method: "GET", path: "/v1/events", host: "desktopd", signal },
      (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          reject(new ControlError(`${socketPath}: HTTP ${res.statusCode} for /v1/events`));
          res.resume();
          return;
        }
        let partial = "";
        res.setEncoding("utf8");
        res.on("data", (text: string) => {
          const lines = (partial + text).split("\n");
          partial = lines.pop() ?? "";
          for (const line of lines) if (line) onEvent(line);
        });
        res.on("end", resolve);
        res.on("close", resolve);
        res.on("error", () => resolve());
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (error.name === "AbortError") resolve();
      else reject(connectError(socketPath, error));
    });
    req.end();
  });
}

function connectError(socketPath: string, error: NodeJS.ErrnoException): ControlError {
  const why =
    error.code === "ENOENT" || error.code === "ECONNREFUSED"
      ? "no desktopd is running there (start one with `desktopd run`, or name its socket with --control)"
      : error.message;
  return new ControlError(`${socketPath}: ${why}`);
}
