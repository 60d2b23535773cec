/**
 * Docker's publish syntax, `[host_ip:][host_port[-end]:]container_port[-end][/tcp|/udp]`, parsed
 * into one mapping per port. Pure: no sockets, no defaults read from the environment.
 */
import { isIPv4, isIPv6, SocketAddress } from "node:net";
import { SpecError } from "./errors.js";

export type Protocol = "tcp" | "udp";

/** Safer than Docker's all-interfaces default: nothing off this machine reaches the guest by accident. */
export const DEFAULT_HOST_IP = "127.0.0.1";

/** One host port forwarded to one target port. */
export interface PortMapping {
  protocol: Protocol;
  /** Address to listen on: IPv4, or IPv6 without brackets. */
  hostIp: string;
  /** 0: a free port is chosen when the forward starts (Docker's -P behaviour). */
  hostPort: number;
  targetPort: number;
}

export interface PublishSpec {
  /** The text as given. */
  spec: string;
  protocol: Protocol;
  hostIp: string;
  /** In port order; a range gives one mapping per port. */
  mappings: PortMapping[];
}

export interface ParseSpecOptions {
  /** Host address when the spec names none (default 127.0.0.1). */
  defaultHostIp?: string;
}

interface Part {
  text: string;
  /** Offset in the whole spec. */
  at: number;
}

interface Range {
  start: number;
  end: number;
}

/** Parses one `-p` value; throws SpecError pointing at the offending part. */
export function parsePublishSpec(spec: string, options: ParseSpecOptions = {}): PublishSpec {
  const fail = (part: Part | { at: number; text: string }, problem: string): never => {
    throw new SpecError(spec, part.at, part.text.length, problem);
  };
  if (spec.length === 0) fail({ at: 0, text: "" }, "is empty; expected [host_ip:][host_port:]container_port");
  const space = spec.search(/\s/);
  if (space >= 0) fail({ at: space, text: spec[space]! }, "contains whitespace");

  let body = spec;
  let protocol: Protocol = "tcp";
  const slash = spec.lastIndexOf("/");
  if (slash >= 0) {
    const proto = { text: spec.slice(slash + 1), at: slash + 1 };
    const name = proto.text.toLowerCase();
    if (name === "tcp" || name === "udp") protocol = name;
    else if (name === "sctp") fail(proto, "sctp is not supported; use tcp or udp");
    else fail(proto, `protocol "${proto.text}" is not tcp or udp`);
    body = spec.slice(0, slash);
  }

  const { ip, ports } = splitHostIp(body, fail);
  const defaultHostIp = options.defaultHostIp ?? DEFAULT_HOST_IP;
  let hostIp = isIPv6(defaultHostIp) ? canonicalIpv6(defaultHostIp) : defaultHostIp;
  if (ip) {
    if (ip.text === "") fail({ at: ip.at, text: "" }, "host address is empty");
    if (ip.bracketed ? !isIPv6(ip.text) : !isIPv4(ip.text)) {
      const problem = ip.bracketed
        ? `host address "${ip.text}" is not an IPv6 address`
        : `host address "${ip.text}" is not an IPv4 address (IPv6 goes in brackets: [::1]:8080:80)`;
      fail(ip, problem);
    }
    hostIp = ip.bracketed ? canonicalIpv6(ip.text) : ip.text;
  }

  const containerPart = ports[ports.length - 1]!;
  if (containerPart.text === "") fail(containerPart, "container port is missing");
  const container = parseRange(containerPart, "container port", 1, fail);
  const hostPart = ports.length === 2 ? ports[0]! : undefined;
  if (hostPart && isIPv4(hostPart.text)) {
    const hint = `${hostPart.text}::${containerPart.text}${spec.slice(body.length)}`;
    fail(
      hostPart,
      `"${hostPart.text}" is an address, not a host port; did you mean ${hint} (any free port)?`,
    );
  }
  const host = hostPart && hostPart.text !== "" ? parseRange(hostPart, "host port", 0, fail) : undefined;

  const count = container.end - container.start + 1;
  const mappings: PortMapping[] = [];
  if (host && (host.start !== 0 || host.end !== 0)) {
    if (host.start === 0) fail(hostPart!, "host port 0 (any free port) cannot start a range");
    const hostCount = host.end - host.start + 1;
    if (hostCount !== count) {
      fail(
        hostPart!,
        `host ports ${show(host)} (${hostCount}) and container ports ${show(container)} (${count}) differ in length`,
      );
    }
    for (let i = 0; i < count; i++)
      mappings.push({ protocol, hostIp, hostPort: host.start + i, targetPort: container.start + i });
  } else {
    for (let p = container.start; p <= container.end; p++)
      mappings.push({ protocol, hostIp, hostPort: 0, targetPort: p });
  }
  return { spec, protocol, hostIp, mappings };
}

/** Parses several specs; the first bad one throws. */
export function parsePublishSpecs(specs: readonly string[], options: ParseSpecOptions = {}): PublishSpec[] {
  return specs.map((s) => parsePublishSpec(s, options));
}

type Fail = (part: Part, problem: string) => never;

/** Splits `[ip:]...` off; returns the remaining one or two colon-separated port parts. */
function splitHostIp(body: string, fail: Fail): { ip?: Part & { bracketed: boolean }; ports: Part[] } {
  if (body.startsWith("[")) {
    const close = body.indexOf("]");
    if (close < 0) fail({ at: 0, text: body }, 'IPv6 host address has no closing "]"');
    const ip = { text: body.slice(1, close), at: 1, bracketed: true };
    if (body[close + 1] !== ":") {
      fail({ at: close + 1, text: body.slice(close + 1, close + 2) }, 'expected ":" after the IPv6 address');
    }
    const ports = split(body.slice(close + 2), close + 2);
    if (ports.length !== 2) {
      fail(
        { at: close + 2, text: body.slice(close + 2) },
        "after a host address give host_port:container_port (host_port may be empty: [::1]::80)",
      );
    }
    return { ip, ports };
  }
  const parts = split(body, 0);
  if (parts.length > 3)
    fail({ at: 0, text: body }, "too many ':'; IPv6 host addresses go in brackets: [::1]:8080:80");
  if (parts.length === 3) return { ip: { ...parts[0]!, bracketed: false }, ports: parts.slice(1) };
  return { ports: parts };
}

function split(text: string, at: number): Part[] {
  const parts: Part[] = [];
  let offset = at;
  for (const piece of text.split(":")) {
    parts.push({ text: piece, at: offset });
    offset += piece.length + 1;
  }
  return parts;
}

function parseRange(part: Part, what: string, min: number, fail: Fail): Range {
  const dash = part.text.indexOf("-");
  const first = dash < 0 ? part : { text: part.text.slice(0, dash), at: part.at };
  const start = parsePort(first, what, min, fail);
  if (dash < 0) return { start, end: start };
  const second = { text: part.text.slice(dash + 1), at: part.at + dash + 1 };
  const end = parsePort(second, `end of ${what} range`, min, fail);
  if (end < start) fail(part, `${what} range ${start}-${end} ends before it starts`);
  // Each port is a socket of this process: a range is not a way to take all of them.
  if (end - start + 1 > MAX_RANGE_PORTS) {
    fail(
      part,
      `${what} range ${start}-${end} has ${end - start + 1} ports; at most ${MAX_RANGE_PORTS} per spec`,
    );
  }
  return { start, end };
}

/** Most ports one spec may publish. */
export const MAX_RANGE_PORTS = 4096;

function parsePort(part: Part, what: string, min: number, fail: Fail): number {
  // Leading zeros are fine, as with Docker: "080" is 80.
  if (!/^\d+$/.test(part.text)) fail(part, `${what} "${part.text}" is not a number`);
  const n = Number(part.text);
  if (n < min || n > 65535) fail(part, `${what} ${part.text} is out of range ${min}-65535`);
  return n;
}

/**
 * One spelling per address, so `[0::1]` and `[::1]` are one host port to the conflict check and in
 * forward ids; an IPv4-mapped address (`::ffff:127.0.0.1`) is the IPv4 endpoint it stands for.
 */
function canonicalIpv6(text: string): string {
  const [address = "", zone] = text.split("%");
  const canonical = new SocketAddress({ address, family: "ipv6" }).address;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(canonical)?.[1];
  if (mapped) return mapped;
  return zone === undefined ? canonical : `${canonical}%${zone}`;
}

function show(r: Range): string {
  return r.start === r.end ? String(r.start) : `${r.start}-${r.end}`;
}
