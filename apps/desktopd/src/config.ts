/**
 * Validation of `run`/`demo` options (from the command line or from `runDaemon`). Everything
 * a user can get wrong is rejected here, before the process touches the system, with a
 * one-line message that names the option.
 */

import { isIP, isIPv4 } from "node:net";
import { DEFAULT_MTU, DEFAULT_SUBNET, MAX_MTU, MIN_MTU } from "@desktopd/core";
import { parseForwardRule, parseRecord, parseServer } from "@desktopd/dns";
import {
  type AutoForwardRule,
  AutoForwardRuleError,
  compileAutoForwardRule,
  formatAutoForwardRule,
  parseAutoForwardRule,
  parsePublishSpec,
  SpecError,
} from "@desktopd/portfwd";
import { parseNoProxy, parseUpstream } from "@desktopd/proxy";
import { isFingerprint } from "@desktopd/ssh-agent";
import {
  ConfigError,
  type EgressRule,
  formatEgressRule,
  parseEgressRule,
  parseStreamAddress,
  subnetProblem,
} from "@desktopd/stack";
import { z } from "zod";
import { InvalidOptionError } from "./errors.js";

export const DEFAULT_IFNAME = "eth0";
export const DEFAULT_DEMO_NETNS = "desktopd";

// The network constants are @desktopd/core's; re-exported for the CLI's help and embedders.
export { DEFAULT_MTU, DEFAULT_SUBNET, MAX_MTU, MIN_MTU };

export const DNS_HOST_MODES = ["os", "nameservers"] as const;

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

// Stricter than iproute2 (which takes any file name): the name also becomes a path under
// /etc/netns and a value in the space-separated ready line.
const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const netnsSchema = z
  .string({ error: "is required" })
  .regex(
    NETNS_NAME,
    "must be 1-63 characters of letters, digits, '_', '.', '-', starting with a letter or digit",
  );

// The kernel limits interface names to 15 bytes (IFNAMSIZ - 1).
const ifnameSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,15}$/, "must be 1-15 letters, digits, '_', '.', '-'");

const subnetSchema = z.string().transform((text, ctx) => {
  const problem = subnetProblem(text.trim());
  if (problem) {
    ctx.addIssue({ code: "custom", message: problem });
    return z.NEVER;
  }
  return text.trim();
});

/**
 * A number, or a string of one (commander hands over strings); anything else (a list, a bool in
 * a config file) is the wrong type, not something to coerce.
 */
const numeric = (error: string) => (schema: z.ZodNumber) =>
  z.preprocess(
    (v) => (typeof v === "string" && v.trim() !== "" ? Number(v) : v),
    schema.refine(Number.isFinite, error),
  );
const numberSchema = (error: string) => z.number({ error });

// Commander hands over strings; runDaemon callers pass numbers. Both end up as an integer.
const mtuSchema = numeric("must be a number")(
  numberSchema("must be a number")
    .int("must be an integer")
    .min(MIN_MTU, `must be between ${MIN_MTU} and ${MAX_MTU}`)
    .max(MAX_MTU, `must be between ${MIN_MTU} and ${MAX_MTU}`),
);

const streamAddressSchema = z.string().refine((text) => parseStreamAddress(text) !== undefined, {
  error: (issue) => `"${String(issue.input)}" is neither a unix socket path nor tcp:HOST:PORT`,
});

// Checked here so a bad spec stops the daemon before it touches the system; kept as text.
// A config file may give one string.
const publishSchema = z.preprocess((v) => (typeof v === "string" ? [v] : v), z.array(z.string()));

const publishHostIpSchema = z.string().refine((text) => isIP(text) !== 0, "must be an IPv4 or IPv6 address");

/** Every spec parses, with the configured default host address (its IPv6 brackets matter). */
function checkPublishSpecs(config: {
  publish?: string[] | undefined;
  publishHostIp?: string | undefined;
}): void {
  for (const spec of config.publish ?? []) {
    try {
      parsePublishSpec(spec, config.publishHostIp ? { defaultHostIp: config.publishHostIp } : {});
    } catch (error) {
      if (!SpecError.isInstance(error)) throw error;
      throw new InvalidOptionError(`--publish: ${error.message}`);
    }
  }
}

const publishTargetSchema = z
  .string()
  .refine((text) => isIP(text) !== 0, "must be an IPv4 or IPv6 address of the guest");

/** A string the DNS package's parser accepts; its message names the problem. */
function parsedBy(parse: (text: string) => unknown) {
  return z.string().superRefine((text, ctx) => {
    try {
      parse(text);
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
    }
  });
}
// Repeatable on the command line; a config file may give one string.
const repeated = <T extends z.ZodType<string>>(item: T) =>
  z.preprocess((v) => (typeof v === "string" ? [v] : v), z.array(item)).default([]);

const logLevelSchema = z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` });

const pathSchema = z.string().min(1, "must be a path");

/** An egress rule as text ("deny 10.0.0.0/8") or, in a config file, as an object; kept as an object. */
const egressRuleSchema = z.union([z.string(), z.record(z.string(), z.unknown())]).transform((value, ctx) => {
  try {
    return parseEgressRule(
      typeof value === "string" ? value : formatEgressRule(value as unknown as EgressRule),
    );
  } catch (error) {
    if (!ConfigError.isInstance(error)) throw error;
    ctx.addIssue({ code: "custom", message: error.message });
    return z.NEVER;
  }
});

/** Whole seconds, 0 where `zeroOff` (the feature off); the CLI hands strings. */
const seconds = (max: number, zeroOff = false) =>
  numeric("must be a number of seconds")(
    numberSchema("must be a number of seconds")
      .int("must be whole seconds")
      .min(zeroOff ? 0 : 1, `must be between ${zeroOff ? 0 : 1} and ${max} seconds`)
      .max(max, `must be between ${zeroOff ? 0 : 1} and ${max} seconds`),
  );

/** HOST:PORT or [V6]:PORT; port 0 picks a free one. */
export function parseListenAddress(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: host === "localhost" ? "127.0.0.1" : host, port };
}

function isLoopbackAddress(host: string): boolean {
  return host === "::1" || (isIPv4(host) && host.startsWith("127."));
}

/** A TCP listen address on loopback only: these pages and metrics are for this machine. */
const loopbackListenSchema = z.string().superRefine((text, ctx) => {
  const address = parseListenAddress(text);
  if (!address)
    ctx.addIssue({ code: "custom", message: `"${text}" is not ADDRESS:PORT (e.g. 127.0.0.1:9464)` });
  else if (!isLoopbackAddress(address.host))
    ctx.addIssue({
      code: "custom",
      message: `"${text}" is not a loopback address (127.0.0.1, [::1] or localhost)`,
    });
});

const mebibytes = numeric("must be a number of MiB")(
  numberSchema("must be a number of MiB")
    .int("must be whole MiB")
    .min(1, "must be at least 1 MiB")
    .max(1024 * 1024, "must be at most 1 TiB"),
);

/** An upstream proxy URL, or "direct" for none whatever the environment says. */
const upstreamProxySchema = z.string().superRefine((text, ctx) => {
  if (text.trim() === "direct") return;
  try {
    parseUpstream(text.trim(), "upstreamProxy");
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});

/** NO_PROXY entries: one comma- or space-separated string, or (config file) a list. */
const noProxySchema = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (typeof v === "string" ? v.split(/[\s,]+/) : v).map((e) => e.trim()).filter(Boolean))
  .superRefine((entries, ctx) => {
    try {
      parseNoProxy(entries, "noProxy");
    } catch (error) {
      ctx.addIssue({ code: "custom", message: (error as Error).message });
    }
  });

/** Ports intercepted for the transparent proxy: "80,443", a list, or "none". */
const portListSchema = z
  .union([z.string(), z.number(), z.array(z.union([z.number(), z.string()]))])
  .transform((v, ctx) => {
    const items = Array.isArray(v)
      ? v
      : typeof v === "number"
        ? [v]
        : v.trim() === "none"
          ? []
          : v.split(",");
    const ports = items.map((p) =>
      typeof p === "number" ? p : /^\s*\d{1,5}\s*$/.test(p) ? Number(p) : Number.NaN,
    );
    const bad = items.find((_p, i) => !Number.isInteger(ports[i]) || ports[i]! < 1 || ports[i]! > 65535);
    if (bad !== undefined) {
      ctx.addIssue({
        code: "custom",
        message: `"${String(bad)}" is not a port (1-65535); "none" turns interception off`,
      });
      return z.NEVER;
    }
    return [...new Set(ports)];
  });

/** USER:PASSWORD for the SOCKS5 server (RFC 1929: each 1-255 bytes). */
const socksAuthSchema = z.string().superRefine((text, ctx) => {
  const at = text.indexOf(":");
  const user = text.slice(0, at);
  const pass = text.slice(at + 1);
  if (at < 1 || pass === "" || Buffer.byteLength(user) > 255 || Buffer.byteLength(pass) > 255)
    ctx.addIssue({ code: "custom", message: "must be USER:PASSWORD, each 1-255 bytes" });
});

/** Key fingerprints as `ssh-add -l` prints them: comma-separated text, or (config file) a list. */
const fingerprintsSchema = z
  .union([z.string(), z.array(z.string())])
  .transform((v) => (typeof v === "string" ? v.split(",") : v).map((e) => e.trim()).filter(Boolean))
  .superRefine((list, ctx) => {
    const bad = list.find((fp) => !isFingerprint(fp));
    if (bad !== undefined)
      ctx.addIssue({
        code: "custom",
        message: `"${bad}" is not a key fingerprint (SHA256:... as ssh-add -l prints it)`,
      });
  });

/** An automatic-forward rule as text ("ignore 22") or, in a config file, an object; kept as text. */
const autoforwardRuleSchema = z
  .union([z.string(), z.record(z.string(), z.unknown())])
  .transform((value, ctx) => {
    try {
      return formatAutoForwardRule(
        typeof value === "string"
          ? parseAutoForwardRule(value)
          : compileAutoForwardRule(value as unknown as AutoForwardRule).rule,
      );
    } catch (error) {
      if (!AutoForwardRuleError.isInstance(error)) throw error;
      ctx.addIssue({ code: "custom", message: error.message });
      return z.NEVER;
    }
  });

export const runOptionsSchema = z.object({
  /** A network namespace to attach through a TAP device. */
  netns: netnsSchema.optional(),
  ifname: ifnameSchema.default(DEFAULT_IFNAME),
  /** Listen for qemu's stream netdev: unix socket paths, or tcp:HOST:PORT for `-netdev socket`. */
  qemuSocket: repeated(streamAddressSchema),
  /** Connect to a qemu that listens (`server=on`), again whenever it restarts. */
  qemuConnect: repeated(streamAddressSchema),
  /** Bind unix datagram sockets for vfkit/krunkit and qemu's dgram netdev. */
  vfkitSocket: repeated(pathSchema),
  /** A guest link on stdin/stdout (qemu stream framing). */
  stdio: z.boolean().default(false),
  /** The control API's unix socket (default: control.sock in the runtime dir when no transport is named). */
  control: pathSchema.optional(),
  configure: z.boolean().default(false),
  subnet: subnetSchema.default(DEFAULT_SUBNET),
  mtu: mtuSchema.default(DEFAULT_MTU),
  pcap: z.string().min(1, "must be a file path").optional(),
  /** virtio-net checksum offload and TSO on the TAP link (one syscall per 64 KB, not per frame). */
  offload: z.boolean().default(true),
  /** Guest ports to publish on the host, Docker's -p syntax. */
  publish: publishSchema.optional(),
  /** Where published ports lead; default: the guest's leased address. */
  publishTarget: publishTargetSchema.optional(),
  /** Host address of publish specs that name none (default 127.0.0.1; Docker's is 0.0.0.0). */
  publishHostIp: publishHostIpSchema.optional(),
  logLevel: logLevelSchema.default("info"),
  /** Fixed DNS records for guests, NAME=ADDRESS or NAME/TYPE=DATA. */
  dnsRecord: repeated(parsedBy(parseRecord)),
  /** Split-horizon forwarding, DOMAIN=IP[:PORT]. */
  dnsForward: repeated(parsedBy(parseForwardRule)),
  /** Nameserver that replaces the host's resolution, IP[:PORT]. */
  dnsUpstream: parsedBy(parseServer).optional(),
  /** The host's resolution: A/AAAA through the OS resolver ("os"), or all through resolv.conf's nameservers. */
  dnsHostMode: z.enum(DNS_HOST_MODES, { error: `must be one of ${DNS_HOST_MODES.join(", ")}` }).optional(),
  /** Egress rules, first match wins: [allow|deny] [tcp|udp] TARGET[:PORTS]. */
  egress: z
    .preprocess(
      (v) => (typeof v === "string" || (v && !Array.isArray(v)) ? [v] : v),
      z.array(egressRuleSchema),
    )
    .default([]),
  /** The host address reaches the host's 127.0.0.1 (false: refused, like slirp4netns --disable-host-loopback). */
  hostLoopback: z.boolean().default(true),
  /** A guest's source address must be its own (lease, reservation or first claim). */
  sourceGuard: z.boolean().default(true),
  /** UDP flows that saw no reply close after this many idle seconds (default 120). */
  udpTimeout: seconds(86_400).optional(),
  /** UDP flows that saw both directions close after this many idle seconds (default 180). */
  udpStreamTimeout: seconds(86_400).optional(),
  /** Keepalive on host sockets after this many idle seconds, 0 off (default 60). */
  tcpKeepalive: seconds(86_400, true).optional(),
  /** Keepalive towards guests after this many idle seconds, 0 off (default 600). */
  guestKeepalive: seconds(86_400, true).optional(),
  /** How long a connection nobody reads any more waits in FIN-WAIT-2 (default 60). */
  finWait2Timeout: seconds(86_400).optional(),
  /** Memory for buffered TCP data, all guests (MiB, default 256). */
  bufferMemory: mebibytes.optional(),
  /** Memory for buffered TCP data, one guest (MiB, default 128). */
  bufferMemoryPerGuest: mebibytes.optional(),
  /** Prometheus metrics on loopback TCP (GET /metrics); they are always on the control socket too. */
  metrics: loopbackListenSchema.optional(),
  /** The status page on loopback TCP, behind a random token printed in its URL. */
  ui: loopbackListenSchema.optional(),
  /** The upstream proxy for guests' HTTP and HTTPS, or "direct" (default: the daemon's environment). */
  upstreamProxy: upstreamProxySchema.optional(),
  /** Destinations that bypass the upstream (NO_PROXY syntax; default: the environment's NO_PROXY). */
  noProxy: noProxySchema.optional(),
  /** A PAC file (http(s) URL or path) deciding the upstream per destination; NO_PROXY still applies first. */
  proxyPac: z.string().min(1, "must be a URL or a path").optional(),
  /** Destinations the proxy serves (NO_PROXY syntax); anything else is answered 403. Default: all. */
  proxyAllow: noProxySchema.optional(),
  /** Ports CONNECT may reach, e.g. "443" (default: any). */
  proxyConnectPorts: portListSchema.optional(),
  /** Guest ports intercepted and sent through the upstream by Host/SNI when one is set (default 80, 443). */
  transparentProxyPorts: portListSchema.default([80, 443]),
  /** Relay guests' ICMP echo beyond the gateway through a raw socket (needs root; false: --no-icmp-relay). */
  icmpRelay: z.boolean().default(true),
  /** The IPv6 side: router advertisements (SLAAC), neighbour discovery and echo (false: --no-ipv6). */
  ipv6: z.boolean().default(true),
  /** The guests' IPv6 prefix, a /64 (default fdc4:f303:9324::/64, as Docker Desktop). */
  ipv6Prefix: z
    .string()
    .regex(/^[0-9a-fA-F:]+\/64$/, 'must be a /64 prefix, e.g. "fdc4:f303:9324::/64"')
    .optional(),
  /** Publish guests' listening ports automatically (false: --no-autoforward). */
  autoforward: z.boolean().default(true),
  /** Rules for automatic forwards, first match wins: ignore|forward [tcp|udp] [PORTS] [guest IP] [to ...]. */
  autoforwardRule: z
    .preprocess(
      (v) => (typeof v === "string" || (v && !Array.isArray(v)) ? [v] : v),
      z.array(autoforwardRuleSchema),
    )
    .default([]),
  /** Relay guests' agent requests to the host's SSH agent (false: --no-ssh-agent). */
  sshAgent: z.boolean().default(true),
  /** The host agent's socket (default: this process's SSH_AUTH_SOCK; without one the relay is off). */
  sshAuthSock: pathSchema.optional(),
  /** Only these keys (SHA256 fingerprints) are visible and usable in guests. */
  sshAgentKeys: fingerprintsSchema.optional(),
  /** Guests may only list keys and sign: add, remove, lock, unlock and extensions are refused. */
  sshAgentSignOnly: z.boolean().default(false),
  /** A SOCKS5 server on loopback TCP whose connections reach guest addresses. */
  socks5: loopbackListenSchema.optional(),
  /** USER:PASSWORD the SOCKS5 server requires (RFC 1929). */
  socks5Auth: socksAuthSchema.optional(),
});

/** The keys a config file may hold. */
export const RUN_OPTION_KEYS = Object.keys(runOptionsSchema.shape);

/** Options of `desktopd run` / `runDaemon` as given (strings allowed where the CLI has them). */
export type RunOptionsInput = z.input<typeof runOptionsSchema>;
/** Validated options with every default filled in. */
export type RunConfig = z.output<typeof runOptionsSchema>;

export const demoOptionsSchema = runOptionsSchema
  .omit({ configure: true, qemuSocket: true, qemuConnect: true, vfkitSocket: true, stdio: true })
  .extend({ netns: netnsSchema.default(DEFAULT_DEMO_NETNS) });

export type DemoOptionsInput = z.input<typeof demoOptionsSchema>;
export type DemoConfig = z.output<typeof demoOptionsSchema>;

export function parseRunOptions(input: unknown): RunConfig {
  const config = parseWith(runOptionsSchema, input);
  if (config.configure && !config.netns) throw new InvalidOptionError("--configure: needs --netns");
  if (config.dnsUpstream && config.dnsHostMode) {
    throw new InvalidOptionError(
      "--dns-host-mode: not with --dns-upstream, which replaces the host's resolution",
    );
  }
  checkPublishSpecs(config);
  return config;
}

/** True when no transport is named: `run` then listens on the default qemu and vfkit sockets. */
export function namesNoTransport(c: RunConfig): boolean {
  return !c.stdio && !namesTransportBesidesStdio(c);
}

/** A namespace or a VM socket is named: guests other than a stdio one may come. */
export function namesTransportBesidesStdio(c: RunConfig): boolean {
  return c.netns !== undefined || c.qemuSocket.length + c.qemuConnect.length + c.vfkitSocket.length > 0;
}

export function parseDemoOptions(input: unknown): DemoConfig {
  const config = parseWith(demoOptionsSchema, input);
  checkPublishSpecs(config);
  return config;
}

/**
 * Checks a config file's options on their own, so a mistake there is reported with the file and
 * the key as written in it rather than as a command-line option.
 */
export function checkConfigFileOptions(path: string, options: Record<string, unknown>): void {
  const result = runOptionsSchema.safeParse(options);
  if (result.success) return;
  const issue = result.error.issues[0]!;
  const key = issue.path
    .map((p, i) => (typeof p === "number" ? `[${p}]` : `${i > 0 ? "." : ""}${String(p)}`))
    .join("");
  throw new InvalidOptionError(`--config: ${path}: ${key || "options"}: ${issue.message}`);
}

function parseWith<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  // One line, first problem only: the user fixes one thing and runs again.
  const issue = result.error.issues[0]!;
  // Repeatable options: the index in the list means nothing on the command line.
  const key = issue.path
    .filter((p) => typeof p !== "number")
    .map(String)
    .join(".");
  const option = key ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : "options";
  throw new InvalidOptionError(`${option}: ${issue.message}`);
}
