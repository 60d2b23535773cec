/**
 * Egress policy: which destinations a guest may reach through the host's sockets. Ordered rules,
 * first match wins, by destination address (CIDR), DNS name, protocol and port; without a match the
 * defaults apply: the host address reaches the host's loopback (unless turned off), other loopback
 * and "this network" addresses, and the guests' own subnet, are refused, everything else goes out.
 */
import { type Logger, type Now, silentLogger, systemClock } from "@desktopd/core";
import { ConfigError } from "./errors.js";
import { LogLimiter } from "./log-limit.js";
import { parseIpv4Address } from "./wire/address.js";
import { formatEndpoint, formatIp, type IpAddr } from "./wire/ip-addr.js";
import { ipv6ToString, isLinkLocal6, isMulticast6, parseIpv6Address } from "./wire/ipv6.js";

export type EgressAction = "allow" | "deny";

/** One rule, as written in a config file or sent to the control API. */
export interface EgressRule {
  action: EgressAction;
  /** Only this protocol (default both). */
  protocol?: "tcp" | "udp";
  /**
   * Destination: "*" (anywhere), an address ("10.1.2.3", "2001:db8::1"), a CIDR ("10.0.0.0/8",
   * "fd00::/8"; in a rule's text an IPv6 target with ports is bracketed: "[fd00::/8]:443"), or a DNS name:
   * "example.com" exactly, "*.example.com" its subdomains, ".example.com" both. A name matches the
   * addresses the gateway's DNS answered that guest with for it.
   */
  to: string;
  /** A port ("443") or range ("8000-8100"); default all. */
  ports?: string;
}

export interface EgressRuleInfo extends EgressRule {
  /** Stable while the rule exists: what `remove` takes. */
  id: number;
  /** Flows this rule decided. */
  matched: number;
}

export interface EgressOptions {
  rules?: (EgressRule | string)[];
  /** The host address reaches the host's 127.0.0.1 (default true; false: refused like any loopback). */
  hostLoopback?: boolean;
  /**
   * The names the DNS server answered `guestIp` with for `dstIp` (lower case, no trailing dot),
   * for rules by name. Without it, name rules never match.
   */
  namesFor?: (guestIp: string, dstIp: string) => readonly string[];
}

/** A flow about to leave through a host socket (ICMP: a relayed echo, ports 0). */
export interface EgressFlow {
  protocol: "tcp" | "udp" | "icmp";
  /** IPv4 as a number, IPv6 as RFC 5952 text. */
  guestIp: IpAddr;
  guestPort: number;
  dstIp: IpAddr;
  dstPort: number;
}

/**
 * A connection desktopd opens for a guest outside the NAT (a proxy's direct connection), by
 * address as text; `names` are what the guest asked for by name, matched by name rules beside
 * the names the gateway's DNS answered that guest with.
 */
export interface EgressQuery {
  protocol: "tcp" | "udp";
  guestIp: string;
  guestPort: number;
  dstIp: string;
  dstPort: number;
  names?: readonly string[];
}

export interface EgressVerdict {
  allowed: boolean;
  /**
   * The deciding rule's id, or the default that applied: "host-loopback", "loopback", "subnet",
   * "default"; "unroutable" for IPv6 destinations no router forwards (link-local, multicast) or
   * that stand for IPv4 (::ffff:0:0/96), refused before any rule.
   */
  by: number | "host-loopback" | "host-loopback-off" | "loopback" | "subnet" | "unroutable" | "default";
}

/** The control surface of a stack's egress policy. */
export interface Egress {
  rules(): EgressRuleInfo[];
  /** Adds a rule at `position` (0-based; default: the end). Throws ConfigError on a bad rule. */
  add(rule: EgressRule | string, position?: number): EgressRuleInfo;
  remove(id: number): boolean;
  /** Replaces every rule (config reload). */
  replace(rules: (EgressRule | string)[]): void;
  readonly hostLoopback: boolean;
  /** Decides and counts a connection made outside the NAT, as it would decide a NATed flow. */
  checkConnection(query: EgressQuery): EgressVerdict;
  /** Flows refused so far, by what refused them. */
  counters(): { allowed: number; denied: number; deniedBy: Record<string, number> };
}

interface Compiled {
  info: EgressRuleInfo;
  protocol?: "tcp" | "udp";
  /** Network and mask for an address rule. */
  net?: { network: number; mask: number };
  /** Prefix and its length for an IPv6 address rule. */
  net6?: { prefix: Buffer; length: number };
  name?: { base: string; exact: boolean; subdomains: boolean };
  portLo: number;
  portHi: number;
}

/** `[allow|deny] [tcp|udp] TARGET[:PORTS]`, e.g. "deny 10.0.0.0/8", "allow tcp *.corp.example:443". */
export function parseEgressRule(text: string): EgressRule {
  const words = text.trim().split(/\s+/);
  const action = words.shift();
  if (action !== "allow" && action !== "deny") {
    throw new ConfigError(`egress rule "${text}": starts with allow or deny`);
  }
  let protocol: "tcp" | "udp" | undefined;
  if (words[0] === "tcp" || words[0] === "udp") protocol = words.shift() as "tcp" | "udp";
  if (words.length !== 1) {
    throw new ConfigError(`egress rule "${text}": want [allow|deny] [tcp|udp] TARGET[:PORTS]`);
  }
  const { to, ports } = splitTarget(words[0]!, text);
  const rule: EgressRule = { action, to };
  if (protocol) rule.protocol = protocol;
  if (ports !== undefined) rule.ports = ports;
  compile(rule, 0);
  return rule;
}

/** `TARGET[:PORTS]`: an IPv6 target is bracketed when ports follow, and may stand bare without. */
function splitTarget(target: string, text: string): { to: string; ports?: string } {
  if (target.startsWith("[")) {
    const m = /^\[([^\]]+)\](?::(.+))?$/.exec(target);
    if (!m) throw new ConfigError(`egress rule "${text}": want [IPV6[/LEN]]:PORTS`);
    return m[2] === undefined ? { to: m[1]! } : { to: m[1]!, ports: m[2] };
  }
  if (target.indexOf(":") !== target.lastIndexOf(":")) return { to: target };
  const colon = target.indexOf(":");
  return colon < 0 ? { to: target } : { to: target.slice(0, colon), ports: target.slice(colon + 1) };
}

export function formatEgressRule(r: EgressRule): string {
  const to = String(r.to).includes(":") && r.ports !== undefined ? `[${r.to}]` : r.to;
  return [r.action, r.protocol, r.ports === undefined ? to : `${to}:${r.ports}`]
    .filter((w) => w !== undefined)
    .join(" ");
}

const NAME = /^(\*\.|\.)?([a-z0-9_]([a-z0-9_-]{0,62})?)(\.[a-z0-9_]([a-z0-9_-]{0,62})?)*$/;

function compile(rule: EgressRule, id: number): Compiled {
  const bad = (why: string) => new ConfigError(`egress rule "${formatEgressRule(rule)}": ${why}`);
  if (rule.action !== "allow" && rule.action !== "deny") throw bad("action is allow or deny");
  if (rule.protocol !== undefined && rule.protocol !== "tcp" && rule.protocol !== "udp") {
    throw bad("protocol is tcp or udp");
  }
  const c: Compiled = { info: { ...rule, id, matched: 0 }, portLo: 0, portHi: 65535 };
  if (rule.protocol) c.protocol = rule.protocol;
  if (rule.ports !== undefined) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(String(rule.ports));
    const lo = Number(m?.[1]);
    const hi = m?.[2] === undefined ? lo : Number(m[2]);
    if (!m || lo < 1 || hi > 65535 || lo > hi) throw bad(`ports "${rule.ports}" is not a port or range`);
    c.portLo = lo;
    c.portHi = hi;
  }
  const to = String(rule.to ?? "").toLowerCase();
  if (to === "*") return c;
  const slash = to.indexOf("/");
  const addr = parseIpv4Address(slash < 0 ? to : to.slice(0, slash));
  if (addr !== undefined) {
    const prefix = slash < 0 ? 32 : Number(to.slice(slash + 1));
    if (!/^\d{1,2}$/.test(slash < 0 ? "32" : to.slice(slash + 1)) || prefix > 32) {
      throw bad(`"${rule.to}" has a bad prefix length`);
    }
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    c.net = { network: (addr & mask) >>> 0, mask };
    return c;
  }
  const addr6 = parseIpv6Address(slash < 0 ? to : to.slice(0, slash));
  if (addr6) {
    const lengthText = slash < 0 ? "128" : to.slice(slash + 1);
    const length = Number(lengthText);
    if (!/^\d{1,3}$/.test(lengthText) || length > 128) throw bad(`"${rule.to}" has a bad prefix length`);
    c.net6 = { prefix: addr6, length };
    return c;
  }
  const name = to.replace(/\.$/, "");
  if (!NAME.test(name) || name.length > 255) {
    throw bad(`"${rule.to}" is not *, an IP address or CIDR, or a DNS name`);
  }
  const base = name.replace(/^\*?\./, "");
  c.name = { base, exact: !name.startsWith("*."), subdomains: name.startsWith("*.") || name.startsWith(".") };
  return c;
}

function nameMatches(n: NonNullable<Compiled["name"]>, names: readonly string[]): boolean {
  for (const name of names) {
    if (n.exact && name === n.base) return true;
    if (n.subdomains && name.endsWith(`.${n.base}`)) return true;
  }
  return false;
}

/** The first `length` bits of `a` and `prefix` agree. */
function inPrefix6(a: Buffer, prefix: Buffer, length: number): boolean {
  const whole = length >> 3;
  for (let i = 0; i < whole; i++) if (a[i] !== prefix[i]) return false;
  const rest = length & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (a[whole]! & mask) === (prefix[whole]! & mask);
}

/** ::ffff:0:0/96: an IPv4 address in IPv6 clothes, which a host socket would reach over IPv4. */
function isV4Mapped(a: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (a[i] !== 0) return false;
  return a[10] === 0xff && a[11] === 0xff;
}

/**
 * The IPv4 address an IPv6 destination stands for, where a host network may carry it to IPv4:
 * NAT64's well-known prefix 64:ff9b::/96 (RFC 6052) and the deprecated IPv4-compatible ::/96
 * (a host with a `sit` tunnel routes it). Rules and defaults for that IPv4 address apply too, so
 * "deny 169.254.0.0/16" is not undone by writing it 64:ff9b::a9fe:a9fe.
 */
function embeddedIpv4(a: Buffer): number | undefined {
  const wellKnown = a[0] === 0x00 && a[1] === 0x64 && a[2] === 0xff && a[3] === 0x9b;
  for (let i = wellKnown ? 4 : 0; i < 12; i++) if (a[i] !== 0) return undefined;
  const v4 = a.readUInt32BE(12);
  // ::, ::1 and their neighbours below 1.0.0.0 are IPv6's own (unspecified, loopback).
  return wellKnown || v4 >>> 24 !== 0 ? v4 : undefined;
}

const LOOPBACK6 = parseIpv6Address("::1")!;
const UNSPECIFIED6 = Buffer.alloc(16);

/** The guest's addressing the defaults need. */
export interface EgressNetwork {
  hostAddress: number;
  network: number;
  netmask: number;
  /** The IPv6 side, when it is on: the host address (text) and the guests' /64 prefix. */
  ipv6?: { hostAddress: string; prefix: string };
}

export class EgressPolicy implements Egress {
  readonly hostLoopback: boolean;
  /** Changes with every rule change: verdicts cached under an older one are stale. */
  generation = 0;
  private compiled: Compiled[] = [];
  private nextId = 1;
  private readonly namesFor: EgressOptions["namesFor"];
  private readonly tally = { allowed: 0, denied: 0, deniedBy: {} as Record<string, number> };
  private readonly refusals: LogLimiter;
  private readonly prefix6: Buffer | undefined;

  constructor(
    private readonly net: EgressNetwork,
    o: EgressOptions = {},
    private readonly log: Logger = silentLogger,
    clock: Now = systemClock,
  ) {
    this.refusals = new LogLimiter(clock);
    this.prefix6 = net.ipv6 ? parseIpv6Address(net.ipv6.prefix.replace(/\/\d+$/, "")) : undefined;
    this.hostLoopback = o.hostLoopback !== false;
    this.namesFor = o.namesFor;
    this.replace(o.rules ?? []);
  }

  rules(): EgressRuleInfo[] {
    return this.compiled.map((c) => ({ ...c.info }));
  }

  add(rule: EgressRule | string, position = this.compiled.length): EgressRuleInfo {
    const c = compile(typeof rule === "string" ? parseEgressRule(rule) : rule, this.nextId);
    this.nextId++;
    const at = Math.max(0, Math.min(this.compiled.length, Math.trunc(position)));
    this.compiled.splice(at, 0, c);
    this.generation++;
    return { ...c.info };
  }

  remove(id: number): boolean {
    const i = this.compiled.findIndex((c) => c.info.id === id);
    if (i < 0) return false;
    this.compiled.splice(i, 1);
    this.generation++;
    return true;
  }

  replace(rules: (EgressRule | string)[]): void {
    // Compile all first: a bad rule leaves the old set in place.
    const next = rules.map((r, i) =>
      compile(typeof r === "string" ? parseEgressRule(r) : r, this.nextId + i),
    );
    this.nextId += next.length;
    this.compiled = next;
    this.generation++;
  }

  counters() {
    return { allowed: this.tally.allowed, denied: this.tally.denied, deniedBy: { ...this.tally.deniedBy } };
  }

  /** Decides a flow; refusals are counted, and logged at most 10 lines per 10 s. */
  check(flow: EgressFlow, extraNames?: readonly string[]): EgressVerdict {
    const verdict = this.decide(flow, extraNames);
    if (verdict.allowed) this.tally.allowed++;
    else {
      this.tally.denied++;
      const key = typeof verdict.by === "number" ? `rule-${verdict.by}` : verdict.by;
      this.tally.deniedBy[key] = (this.tally.deniedBy[key] ?? 0) + 1;
      this.logRefusal(flow, verdict.by);
    }
    return verdict;
  }

  private logRefusal(flow: EgressFlow, by: EgressVerdict["by"]): void {
    const admitted = this.refusals.admit();
    if (!admitted) return;
    this.log.info(
      {
        protocol: flow.protocol,
        guest: formatEndpoint(flow.guestIp, flow.guestPort),
        dst: formatEndpoint(flow.dstIp, flow.dstPort),
        by: typeof by === "number" ? `rule ${by}` : by,
        ...(admitted.suppressed ? { suppressed: admitted.suppressed } : {}),
      },
      "egress refused",
    );
  }

  checkConnection(q: EgressQuery): EgressVerdict {
    const guestIp = toIpAddr(q.guestIp);
    const dstIp = toIpAddr(q.dstIp);
    if (guestIp === undefined || dstIp === undefined) {
      throw new ConfigError(`egress: ${q.dstIp} is not an IP address`);
    }
    const names = (q.names ?? []).map((n) => n.toLowerCase().replace(/\.$/, ""));
    return this.check(
      { protocol: q.protocol, guestIp, guestPort: q.guestPort, dstIp, dstPort: q.dstPort },
      names,
    );
  }

  private decide(flow: EgressFlow, extraNames: readonly string[] = []): EgressVerdict {
    const dst = flow.dstIp;
    const dst6 = typeof dst === "string" ? parseIpv6Address(dst) : undefined;
    if (typeof dst === "string") {
      // Before any rule: an "allow *" must not open these.
      if (!dst6 || isV4Mapped(dst6) || isMulticast6(dst6) || isLinkLocal6(dst6)) {
        return { allowed: false, by: "unroutable" };
      }
    }
    const dst4 = typeof dst === "number" ? dst : dst6 ? embeddedIpv4(dst6) : undefined;
    let names: readonly string[] | undefined;
    for (const c of this.compiled) {
      if (c.protocol !== undefined && c.protocol !== flow.protocol) continue;
      if (flow.dstPort < c.portLo || flow.dstPort > c.portHi) continue;
      if (c.net && (dst4 === undefined || (dst4 & c.net.mask) >>> 0 !== c.net.network)) continue;
      if (c.net6 && !(dst6 && inPrefix6(dst6, c.net6.prefix, c.net6.length))) continue;
      if (c.name) {
        names ??= [...extraNames, ...(this.namesFor?.(formatIp(flow.guestIp), formatIp(dst)) ?? [])];
        if (!nameMatches(c.name, names)) continue;
      }
      c.info.matched++;
      return { allowed: c.info.action === "allow", by: c.info.id };
    }
    if (dst6) {
      // An embedded IPv4 address is refused where IPv4 would refuse it (the host address over
      // NAT64 is not the host's loopback: only the guests' own address is mapped there).
      const refused = dst4 === undefined ? undefined : this.refused4(dst4);
      return refused ?? this.default6(dst as string, dst6);
    }
    if (typeof dst !== "number") return { allowed: false, by: "unroutable" };
    if (dst === this.net.hostAddress) {
      return this.hostLoopback
        ? { allowed: true, by: "host-loopback" }
        : { allowed: false, by: "host-loopback-off" };
    }
    return this.refused4(dst) ?? { allowed: true, by: "default" };
  }

  /** IPv4's default refusals: loopback and "this network", and the guests' own subnet. */
  private refused4(dst: number): EgressVerdict | undefined {
    const first = dst >>> 24;
    if (first === 127 || first === 0) return { allowed: false, by: "loopback" };
    if ((dst & this.net.netmask) >>> 0 === this.net.network) return { allowed: false, by: "subnet" };
    return undefined;
  }

  private default6(dst: string, bytes: Buffer): EgressVerdict {
    const v6 = this.net.ipv6;
    if (dst === v6?.hostAddress) {
      return this.hostLoopback
        ? { allowed: true, by: "host-loopback" }
        : { allowed: false, by: "host-loopback-off" };
    }
    if (bytes.equals(LOOPBACK6) || bytes.equals(UNSPECIFIED6)) return { allowed: false, by: "loopback" };
    if (this.prefix6 && inPrefix6(bytes, this.prefix6, 64)) return { allowed: false, by: "subnet" };
    return { allowed: true, by: "default" };
  }
}

/** An address as text → the transport layers' form; an IPv4-mapped IPv6 address is its IPv4 one. */
function toIpAddr(text: string): IpAddr | undefined {
  const v4 = parseIpv4Address(text.replace(/^::ffff:/i, ""));
  if (v4 !== undefined) return v4;
  const v6 = parseIpv6Address(text);
  return v6 ? ipv6ToString(v6) : undefined;
}
