/** Runs the real `dig` (bind9-dnsutils) and reads its answer, for comparing servers. */
import { spawn } from "node:child_process";

export interface DigResult {
  status: string;
  flags: string[];
  /** Answer records as "name TYPE data", TTL left out (it counts down), sorted. */
  answers: string[];
  /** TTLs of the answer records, in the order dig printed them. */
  ttls: number[];
  raw: string;
}

export function parseDig(out: string): DigResult {
  const status = /status: ([A-Z]+)/.exec(out)?.[1] ?? "NONE";
  const flags = (/;; flags: ([a-z ]*);/.exec(out)?.[1] ?? "").trim().split(/\s+/).filter(Boolean);
  const answers: string[] = [];
  const ttls: number[] = [];
  const section = /;; ANSWER SECTION:\n([\s\S]*?)(\n\n|$)/.exec(out)?.[1] ?? "";
  for (const line of section.split("\n").filter(Boolean)) {
    const [name = "", ttl = "", , type = "", ...data] = line.split(/\s+/);
    ttls.push(Number(ttl));
    answers.push(`${name.toLowerCase()} ${type} ${data.join(" ")}`);
  }
  return { status, flags, answers: answers.sort(), ttls, raw: out };
}

/** `dig @server -p port ARGS`; +tries=1 so a dead server shows as "NONE" quickly. */
export function dig(server: string, port: number, args: string[], exec = runLocal): Promise<DigResult> {
  return exec(["dig", `@${server}`, "-p", String(port), "+tries=1", "+timeout=5", ...args]).then(parseDig);
}

function runLocal(argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.on("error", reject);
    child.on("close", () => resolve(out));
  });
}
