/**
 * Proxy auto-config (PAC) files: `FindProxyForURL(url, host)` run by `pac-resolver` inside a
 * QuickJS interpreter compiled to WebAssembly (`quickjs-wasi`), so a PAC file — often fetched
 * from the network — runs with no access to Node, a memory cap and a time limit per call. Its
 * answer ("PROXY a:3128; SOCKS5 b:1080; DIRECT") is parsed into hops tried in order.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { ProxyConfigError } from "./errors.js";
import type { Upstream } from "./upstream.js";

/** One hop of a PAC answer: an upstream, or `undefined` for DIRECT. */
export type Hop = Upstream | undefined;

export interface PacScript {
  /** Where the script came from (a URL or a path), for status and logs. */
  readonly source: string;
  /** The hops for `url`, in the order to try them; `[undefined]` (DIRECT) when the script fails. */
  find(url: string, host: string): Promise<Hop[]>;
  /** Releases the interpreter. */
  close(): void;
}

export interface PacOptions {
  /** Bound on one FindProxyForURL call, ms (default 1000); past it the call fails (DIRECT). */
  timeoutMs?: number;
  /** The interpreter's memory, bytes (default 16 MiB). */
  memoryLimit?: number;
  /** Reports a script that failed (thrown, over time or memory, a bad answer). */
  onError?: (error: Error) => void;
}

const require = createRequire(import.meta.url);
let wasm: Promise<Buffer> | undefined;

/** The QuickJS binary, read once per process. */
function quickjsBinary(): Promise<Buffer> {
  wasm ??= readFile(require.resolve("quickjs-wasi/quickjs.wasm"));
  return wasm;
}

/**
 * Parses a FindProxyForURL answer: `DIRECT`, `PROXY h:p` and `HTTP h:p` (an HTTP proxy),
 * `HTTPS h:p`, `SOCKS h:p` and `SOCKS5 h:p` (SOCKS5; the proxy resolves names), separated by `;`.
 * Entries it cannot use (SOCKS4, a bad address) are skipped; an answer with none left is DIRECT.
 */
export function parsePacAnswer(answer: string): Hop[] {
  const hops: Hop[] = [];
  for (const entry of answer.split(";")) {
    const [kind, address, ...extra] = entry.trim().split(/\s+/);
    if (!kind || extra.length > 0) continue;
    const type = kind.toUpperCase();
    if (type === "DIRECT" && address === undefined) {
      hops.push(undefined);
      continue;
    }
    const m = address === undefined ? null : /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
    const port = Number(m?.[3]);
    if (!m || port < 1 || port > 65535) continue;
    const host = m[1] ?? m[2]!;
    const protocol =
      type === "PROXY" || type === "HTTP"
        ? "http"
        : type === "HTTPS"
          ? "https"
          : type === "SOCKS" || type === "SOCKS5"
            ? "socks5h"
            : undefined;
    if (protocol) hops.push({ protocol, host, port });
  }
  return hops.length > 0 ? hops : [undefined];
}

/** Compiles `script` (the PAC file's text); ProxyConfigError when it defines no FindProxyForURL. */
export async function compilePac(script: string, source: string, o: PacOptions = {}): Promise<PacScript> {
  const timeoutMs = o.timeoutMs ?? 1000;
  let deadline = Number.POSITIVE_INFINITY;
  // Loaded on first use: a daemon without a PAC file never carries the interpreter.
  const [{ createPacResolver }, { QuickJS }] = await Promise.all([
    import("pac-resolver"),
    import("quickjs-wasi"),
  ]);
  const vm = await QuickJS.create({
    wasm: await quickjsBinary(),
    memoryLimit: o.memoryLimit ?? 16 * 1024 * 1024,
    interruptHandler: () => Date.now() > deadline,
  });
  let find: (url: string, host: string) => Promise<string>;
  try {
    deadline = Date.now() + timeoutMs;
    find = createPacResolver(vm as never, script, { filename: source }) as typeof find;
  } catch (error) {
    vm.dispose();
    throw new ProxyConfigError("proxyPac", `${source}: ${(error as Error).message}`);
  } finally {
    deadline = Number.POSITIVE_INFINITY;
  }
  // One call at a time: the deadline belongs to the call running in the interpreter.
  let queue: Promise<unknown> = Promise.resolve();
  let closed = false;
  return {
    source,
    find(url, host) {
      const next = queue.then(async (): Promise<Hop[]> => {
        if (closed) return [undefined];
        deadline = Date.now() + timeoutMs;
        try {
          const answer = await find(url, host);
          if (typeof answer !== "string") throw new Error(`FindProxyForURL returned ${typeof answer}`);
          return parsePacAnswer(answer);
        } catch (error) {
          o.onError?.(error as Error);
          return [undefined];
        } finally {
          deadline = Number.POSITIVE_INFINITY;
        }
      });
      queue = next;
      return next;
    },
    close() {
      if (closed) return;
      closed = true;
      void queue.then(() => vm.dispose());
    },
  };
}

/** Largest PAC file read (they are a few KiB; some corporate ones reach a few hundred). */
export const MAX_PAC_BYTES = 1024 * 1024;

/** Reads a PAC file from an http(s) URL, a file: URL or a path, and compiles it. */
export async function loadPac(
  location: string,
  o: PacOptions & { fetchTimeoutMs?: number } = {},
): Promise<PacScript> {
  let text: string;
  try {
    if (/^https?:\/\//i.test(location)) {
      const response = await fetch(location, { signal: AbortSignal.timeout(o.fetchTimeoutMs ?? 10_000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const length = Number(response.headers.get("content-length") ?? 0);
      if (length > MAX_PAC_BYTES) throw new Error(`over ${MAX_PAC_BYTES} bytes`);
      text = await response.text();
    } else {
      text = await readFile(location.startsWith("file:") ? new URL(location) : location, "utf8");
    }
  } catch (error) {
    throw new ProxyConfigError("proxyPac", `${location}: ${(error as Error).message}`);
  }
  if (Buffer.byteLength(text) > MAX_PAC_BYTES) {
    throw new ProxyConfigError("proxyPac", `${location}: over ${MAX_PAC_BYTES} bytes`);
  }
  return compilePac(text, location, o);
}
