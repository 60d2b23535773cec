/**
 * /v1/proxy: the upstream guests' proxied connections take, changed while the daemon runs. A bad
 * URL is the proxy package's ProxyConfigError, answered 400 naming the key.
 */
import type { IncomingMessage } from "node:http";
import { allow, HttpError, readJson } from "./http.js";

export interface ProxyControl {
  info(): Record<string, unknown>;
  set(override: { upstream?: string; pac?: string; noProxy?: string[] }): Promise<Record<string, unknown>>;
  unset(): Promise<Record<string, unknown>>;
  env(): Record<string, string>;
}

const USAGE =
  'expected {"upstream": "http://HOST:PORT" | "socks5://HOST:PORT" | "direct", "pac": "URL or path", "noProxy": "a,b"} (upstream or pac, or both)';

export async function handleProxy(
  req: IncomingMessage,
  parts: string[],
  proxy: ProxyControl,
): Promise<{ status: number; body: unknown }> {
  if (parts.length === 0) {
    allow(req, ["GET", "PUT", "DELETE"]);
    if (req.method === "GET") return { status: 200, body: proxy.info() };
    if (req.method === "DELETE") return { status: 200, body: await proxy.unset() };
    const body = (await readJson(req)) as { upstream?: unknown; pac?: unknown; noProxy?: unknown } | null;
    const { upstream, pac, noProxy } = body ?? {};
    const text = (v: unknown) => v === undefined || (typeof v === "string" && v.trim() !== "");
    if (!text(upstream) || !text(pac) || (upstream === undefined && pac === undefined)) {
      throw new HttpError(400, USAGE);
    }
    const entries =
      noProxy === undefined
        ? undefined
        : typeof noProxy === "string"
          ? noProxy.split(/[\s,]+/).filter(Boolean)
          : Array.isArray(noProxy) && noProxy.every((e) => typeof e === "string")
            ? (noProxy as string[])
            : undefined;
    if (noProxy !== undefined && entries === undefined) throw new HttpError(400, USAGE);
    return {
      status: 200,
      body: await proxy.set({
        ...(upstream === undefined ? {} : { upstream: upstream as string }),
        ...(pac === undefined ? {} : { pac: pac as string }),
        ...(entries ? { noProxy: entries } : {}),
      }),
    };
  }
  if (parts.length === 1 && parts[0] === "env") {
    allow(req, ["GET"]);
    return { status: 200, body: proxy.env() };
  }
  throw new HttpError(404, `no such resource: /v1/proxy/${parts.join("/")}`);
}
