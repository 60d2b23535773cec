/**
 * The names both guests query through the gateway's DNS server, and what each must answer: a
 * fixed record (--dns-record), the built-in host name, an upstream name (replayable), a unique
 * upstream name per query (forwarded every time: the caches see new names all run long) and a
 * unique name the upstream does not know (NXDOMAIN).
 */

/** The zone dnsmasq (the daemon's upstream) is authoritative for. */
export const upstreamZone = "soak.test";
export const fixedName = "soak-fixed.internal";
export const fixedAddress = "10.77.0.1";
/** `--dns-record` for the daemon. */
export const fixedRecord = `${fixedName}=${fixedAddress}`;

export interface DnsExpectation {
  name: string;
  /** The A record expected, or "NXDOMAIN". */
  want: string;
}

/** The queries of one round; `token` makes the unique names unique (letters, digits, dashes). */
export function dnsQueries(token: string, hostAddress: string): DnsExpectation[] {
  return [
    { name: fixedName, want: fixedAddress },
    { name: "host.docker.internal", want: hostAddress },
    { name: `up.${upstreamZone}`, want: "10.77.0.2" },
    { name: `u${token}.up.${upstreamZone}`, want: "10.77.0.2" },
    { name: `nx${token}.${upstreamZone}`, want: "NXDOMAIN" },
  ];
}

/** What one query got: an address list, "NXDOMAIN", or undefined when no answer came. */
export type DnsAnswer = string | undefined;

/** `dig @gw q1 A q2 A ...` output: each answered query's status and A records, by name. */
export function parseDigBatch(out: string): Map<string, string> {
  const got = new Map<string, string>();
  for (const chunk of out.split(";; ->>HEADER<<-").slice(1)) {
    const status = /status: ([A-Z]+)/.exec(chunk)?.[1] ?? "NONE";
    const name = /;; QUESTION SECTION:\n;(\S+?)\.?\s/.exec(chunk)?.[1]?.toLowerCase();
    if (!name) continue;
    const answer = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(chunk)?.[1] ?? "";
    const addresses = answer
      .split("\n")
      .map((l) => l.split(/\s+/))
      .filter((f) => f[3] === "A")
      .map((f) => f[4])
      .sort();
    got.set(name, status === "NOERROR" ? addresses.join(",") : status);
  }
  return got;
}

/** Whether `got` is what `want` asks for; undefined `got` is no answer at all. */
export function dnsVerdict(want: string, got: DnsAnswer): "ok" | "wrong" | "failed" {
  if (got === undefined || got === "NONE" || got === "SERVFAIL") return "failed";
  return got === want ? "ok" : "wrong";
}
