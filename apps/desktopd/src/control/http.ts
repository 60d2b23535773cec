/** HTTP plumbing shared by the control API's resources. */
import type { IncomingMessage } from "node:http";

/** Largest request body: a spec or a rule is a few dozen bytes. */
export const MAX_BODY = 16 * 1024;

/** An answer with this status and message, as {"error", "code"}. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code = "ERR_DESKTOPD_CONTROL",
  ) {
    super(message);
  }
}

export function decoded(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `"${segment}" is not a valid URL path segment`);
  }
}

export function allow(req: IncomingMessage, methods: string[]): void {
  if (!methods.includes(req.method ?? ""))
    throw new HttpError(405, `${req.method} not allowed (${methods.join(", ")})`);
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    throw new HttpError(400, "the request body is not JSON");
  }
}
