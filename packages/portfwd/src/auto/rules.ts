/**
 * Rules for automatic forwards, ordered, first match wins, as Lima's portForwards are:
 *
 *   ignore [tcp|udp] [PORTS] [guest IP]
 *   forward [tcp|udp] [PORTS] [guest IP] [to [HOST_IP:]HOST_PORT | to [HOST_IP:]+OFFSET]
 *
 * PORTS is a port or a range (default all); `guest IP` limits the rule to one guest (a per-guest
 * off switch: `ignore guest 192.168.65.9`). Without a matching rule a guest port is published on
 * 127.0.0.1 at the same port. Only a rule can open a non-loopback host address. Bad rules throw
 * AutoForwardRuleError.
 */
import { isIP } from "node:net";
import { AutoForwardRuleError } from "../errors.js";
import type { Listener } from "./proc-net.js";

export interface AutoForwardRule {
  action: "forward" | "ignore";
  protocol?: "tcp" | "udp";
  /** "3000" or "3000-3999" (default every port). */
  ports?: string;
  /** Only this guest's listeners. */
  guest?: string;
  /** Host address (default 127.0.0.1). */
  hostIp?: string;
  /** "8080" (one guest port), "+10000" (an offset), or "8000" as the start of a range mapped in order. */
  hostPort?: string;
}

export interface CompiledRule {
  rule: AutoForwardRule;
  lo: number;
  hi: number;
  /** Host port for guest `port`, or undefined when out of 1..65535. */
  hostPortFor(port: number): number | undefined;
}

/** Where an automatic forward of `listener` goes, or why there is none. */
export type AutoDecision =
  | {
      publish: true;
      hostIp: string;
      hostPort: number;
      rule?: number;
      /** Where the forward dials: the listener's own IPv6 address when it listens on one. */
      target?: string;
    }
  | {
      publish: false;
      reason: "guest-loopback" | "other-address" | "ipv6-only" | "ignored" | "bad-port";
      rule?: number;
    };

export const DEFAULT_AUTO_HOST_IP = "127.0.0.1";

function bad(text: string, why: string): never {
  throw new AutoForwardRuleError(`autoforward rule "${text}": ${why}`);
}

function portRange(text: string, where: string): [number, number] {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  const lo = Number(m?.[1]);
  const hi = m?.[2] === undefined ? lo : Number(m[2]);
  if (!m || lo < 1 || hi > 65535 || lo > hi) bad(where, `"${text}" is not a port or a range (1-65535)`);
  return [lo, hi];
}

/** Parses the text form; throws SpecError naming the rule and the problem. */
export function parseAutoForwardRule(text: string): AutoForwardRule {
  const words = text.trim().split(/\s+/);
  const action = words.shift();
  if (action !== "forward" && action !== "ignore") bad(text, 'starts with "forward" or "ignore"');
  const rule: AutoForwardRule = { action };
  while (words.length > 0) {
    const w = words.shift()!;
    if (w === "tcp" || w === "udp") rule.protocol = w;
    else if (/^\d/.test(w)) {
      portRange(w, text);
      rule.ports = w;
    } else if (w === "guest") {
      const ip = words.shift();
      if (!ip || isIP(ip) === 0) bad(text, "guest needs an address");
      rule.guest = ip;
    } else if (w === "to") {
      if (action === "ignore") bad(text, '"to" is for forward rules');
      const target = words.shift();
      const m = target ? /^(?:(\[[0-9a-fA-F:.]+\]|[0-9.]+):)?(\+?\d{1,5})$/.exec(target) : null;
      if (!m) bad(text, `"${target ?? ""}" is not [HOST_IP:]PORT or [HOST_IP:]+OFFSET`);
      if (m[1]) {
        const ip = m[1].replace(/^\[|\]$/g, "");
        if (isIP(ip) === 0) bad(text, `"${ip}" is not an address`);
        rule.hostIp = ip;
      }
      rule.hostPort = m[2]!;
    } else bad(text, `"${w}" is not understood`);
  }
  return compileAutoForwardRule(rule, text).rule;
}

/** A rule as text again. */
export function formatAutoForwardRule(r: AutoForwardRule): string {
  const host = r.hostIp ? (r.hostIp.includes(":") ? `[${r.hostIp}]:` : `${r.hostIp}:`) : "";
  return [
    r.action,
    r.protocol,
    r.ports,
    r.guest ? `guest ${r.guest}` : undefined,
    r.hostPort !== undefined ? `to ${host}${r.hostPort}` : r.hostIp ? `to ${host}+0` : undefined,
  ]
    .filter(Boolean)
    .join(" ");
}

export function compileAutoForwardRule(
  rule: AutoForwardRule,
  text = formatAutoForwardRule(rule),
): CompiledRule {
  if (rule.action !== "forward" && rule.action !== "ignore") bad(text, 'action is "forward" or "ignore"');
  if (rule.protocol !== undefined && rule.protocol !== "tcp" && rule.protocol !== "udp")
    bad(text, "protocol is tcp or udp");
  if (rule.guest !== undefined && isIP(rule.guest) === 0)
    bad(text, `guest "${rule.guest}" is not an address`);
  if (rule.hostIp !== undefined && isIP(rule.hostIp) === 0)
    bad(text, `host "${rule.hostIp}" is not an address`);
  const [lo, hi] = rule.ports === undefined ? [1, 65535] : portRange(rule.ports, text);
  let hostPortFor = (port: number): number | undefined => port;
  if (rule.hostPort !== undefined) {
    const offset = rule.hostPort.startsWith("+");
    const n = Number(rule.hostPort);
    if (!Number.isInteger(n) || n < 0 || n > 65535) bad(text, `host port "${rule.hostPort}" is out of range`);
    if (!offset && lo !== hi && rule.ports === undefined)
      bad(text, "a fixed host port needs a guest port or range");
    hostPortFor = (port) => {
      const p = offset ? port + n : n + (port - lo);
      return p >= 1 && p <= 65535 ? p : undefined;
    };
  }
  return { rule: { ...rule }, lo, hi, hostPortFor };
}

const isLoopback = (a: string) => a === "::1" || a.startsWith("127.");
const isWildcard = (a: string) => a === "0.0.0.0" || a === "::";

/**
 * The decision for one listener of the guest at `guestIp`, whose IPv6 addresses (as the network
 * saw it use them) are `guestIpv6`.
 */
export function decideAutoForward(
  listener: Listener,
  guestIp: string,
  rules: readonly CompiledRule[],
  guestIpv6: readonly string[] = [],
): AutoDecision {
  // Reachable only from inside the guest: the stack dials the guest's own address.
  if (isLoopback(listener.address)) return { publish: false, reason: "guest-loopback" };
  let target: string | undefined;
  // An IPv6 wildcard listener takes IPv4 too (unless V6ONLY); a specific IPv6 one is dialled at
  // its address, when that is one the guest is known to use (not another guest's).
  if (listener.family === 6 && listener.address.includes(":") && !isWildcard(listener.address)) {
    if (!guestIpv6.includes(listener.address)) return { publish: false, reason: "ipv6-only" };
    target = listener.address;
  } else if (!isWildcard(listener.address) && listener.address !== guestIp)
    return { publish: false, reason: "other-address" };
  const to = target === undefined ? {} : { target };
  for (let i = 0; i < rules.length; i++) {
    const c = rules[i]!;
    if (c.rule.protocol !== undefined && c.rule.protocol !== listener.protocol) continue;
    if (listener.port < c.lo || listener.port > c.hi) continue;
    if (c.rule.guest !== undefined && c.rule.guest !== guestIp) continue;
    if (c.rule.action === "ignore") return { publish: false, reason: "ignored", rule: i };
    const hostPort = c.hostPortFor(listener.port);
    if (hostPort === undefined) return { publish: false, reason: "bad-port", rule: i };
    return { publish: true, hostIp: c.rule.hostIp ?? DEFAULT_AUTO_HOST_IP, hostPort, rule: i, ...to };
  }
  return { publish: true, hostIp: DEFAULT_AUTO_HOST_IP, hostPort: listener.port, ...to };
}
