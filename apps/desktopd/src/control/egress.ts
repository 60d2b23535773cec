/**
 * /v1/egress: the stack's egress rules while it runs. Rules are text ("deny 10.0.0.0/8") or
 * objects ({"action": "deny", "to": "10.0.0.0/8"}); a bad one is a 400 naming the problem.
 */
import type { IncomingMessage } from "node:http";
import type { Egress, EgressRule } from "@desktopd/stack";
import { allow, decoded, HttpError, readJson } from "./http.js";

export async function handleEgress(
  req: IncomingMessage,
  parts: string[],
  egress: Egress,
): Promise<{ status: number; body: unknown }> {
  if (parts.length === 0) {
    allow(req, ["GET", "POST"]);
    if (req.method === "GET") {
      return {
        status: 200,
        body: { hostLoopback: egress.hostLoopback, rules: egress.rules(), counters: egress.counters() },
      };
    }
    const body = (await readJson(req)) as { rule?: unknown; position?: unknown } | null;
    const rule = body?.rule;
    const position = body?.position;
    if (typeof rule !== "string" && (typeof rule !== "object" || rule === null || Array.isArray(rule))) {
      throw new HttpError(
        400,
        'expected {"rule": "allow|deny [tcp|udp] TARGET[:PORTS]", "position": N (optional)}',
      );
    }
    if (position !== undefined && (!Number.isInteger(position) || (position as number) < 0)) {
      throw new HttpError(400, "position must be a whole number ≥ 0 (0: first)");
    }
    // A bad rule is the stack's ConfigError: the server answers it 400.
    return { status: 201, body: egress.add(rule as string | EgressRule, position as number | undefined) };
  }
  if (parts.length === 1) {
    allow(req, ["DELETE"]);
    const text = decoded(parts[0]!);
    const id = /^[1-9]\d{0,9}$/.test(text) ? Number(text) : Number.NaN;
    const rule = egress.rules().find((r) => r.id === id);
    if (!rule || !egress.remove(id)) {
      throw new HttpError(404, `no egress rule with id ${text}`, "ERR_DESKTOPD_EGRESS_NOT_FOUND");
    }
    return { status: 200, body: rule };
  }
  throw new HttpError(404, `no such resource: /v1/egress/${parts.join("/")}`);
}
