/**
 * /v1/autoforward: automatic forwards while the daemon runs — their rules (first match wins),
 * what is published or waiting for its host port, and the line a VM runs to report its listeners.
 * A bad rule is the forwarder's AutoForwardRuleError, answered 400.
 */
import type { IncomingMessage } from "node:http";
import type { AutoForwardRule } from "@desktopd/portfwd";
import { allow, decoded, HttpError, readJson } from "./http.js";

export interface AutoforwardControl {
  info(): Record<string, unknown>;
  addRule(rule: string | AutoForwardRule, position?: number): { id: number; rule: string };
  removeRule(id: number): { id: number; rule: string } | undefined;
  yieldTo(protocol: "tcp" | "udp", hostIp: string, hostPort: number): Promise<void>;
}

export async function handleAutoforward(
  req: IncomingMessage,
  parts: string[],
  auto: AutoforwardControl,
): Promise<{ status: number; body: unknown }> {
  if (parts.length === 0) {
    allow(req, ["GET", "POST"]);
    if (req.method === "GET") return { status: 200, body: auto.info() };
    const body = (await readJson(req)) as { rule?: unknown; position?: unknown } | null;
    const rule = body?.rule;
    const position = body?.position;
    if (typeof rule !== "string" && (typeof rule !== "object" || rule === null || Array.isArray(rule))) {
      throw new HttpError(
        400,
        'expected {"rule": "ignore|forward [tcp|udp] [PORTS] [guest IP] [to ...]", "position": N}',
      );
    }
    if (position !== undefined && (!Number.isInteger(position) || (position as number) < 0)) {
      throw new HttpError(400, "position must be a whole number ≥ 0 (0: first)");
    }
    return {
      status: 201,
      body: auto.addRule(rule as string | AutoForwardRule, position as number | undefined),
    };
  }
  if (parts.length === 1) {
    allow(req, ["DELETE"]);
    const text = decoded(parts[0]!);
    const removed = /^[1-9]\d{0,9}$/.test(text) ? auto.removeRule(Number(text)) : undefined;
    if (!removed)
      throw new HttpError(404, `no autoforward rule with id ${text}`, "ERR_DESKTOPD_AUTOFORWARD_NOT_FOUND");
    return { status: 200, body: removed };
  }
  throw new HttpError(404, `no such resource: /v1/autoforward/${parts.join("/")}`);
}
