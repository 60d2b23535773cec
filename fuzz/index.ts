/**
 * One helper for every property-based fuzz test: run counts scaled by `FUZZ_SCALE` (the long mode,
 * `npm run fuzz`), and a corpus under fuzz/corpus/ of every counterexample that ever failed. Saved
 * counterexamples are replayed before the random runs, so a bug once found stays tested.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import fc from "fast-check";

export { bytes, mutated } from "./arbitraries.js";
export { fc };

const CORPUS = new URL("./corpus/", import.meta.url);
const scale = Number(process.env.FUZZ_SCALE ?? 1);
if (!(scale > 0)) throw new Error(`FUZZ_SCALE must be a positive number, not "${process.env.FUZZ_SCALE}"`);
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

/** `runs` is the count tuned for the bounded unit run. */
export function fuzz<T>(
  target: string,
  name: string,
  arb: fc.Arbitrary<T>,
  check: (v: T) => void,
  runs: number,
) {
  const details = fc.check(fc.property(arb, check), parameters(target, name, runs));
  if (details.failed) fail(target, name, details);
}

export async function fuzzAsync<T>(
  target: string,
  name: string,
  arb: fc.Arbitrary<T>,
  check: (v: T) => Promise<void>,
  runs: number,
): Promise<void> {
  const details = await fc.check(fc.asyncProperty(arb, check), parameters(target, name, runs));
  if (details.failed) fail(target, name, details);
}

/** The values saved for `target`/`name`, decoded. */
export function corpus(target: string, name: string): unknown[] {
  return (load(target)[name] ?? []).map((e) => decode(e.value));
}

interface Entry {
  value: unknown;
  error: string;
}

function parameters<T>(target: string, name: string, runs: number): fc.Parameters<[T]> {
  const examples = corpus(target, name).map((v) => [v as T] as [T]);
  return {
    // fast-check counts examples among the runs: every saved one, then the random ones.
    numRuns: examples.length + Math.max(1, Math.round(runs * scale)),
    examples,
    ...(seed === undefined ? {} : { seed }),
  };
}

function fail<T>(target: string, name: string, details: fc.RunDetails<[T]>): never {
  const file = new URL(`${target}.json`, CORPUS);
  if (details.counterexample) {
    const entries = load(target);
    const list = entries[name] ?? [];
    entries[name] = list;
    const value = encode(details.counterexample[0]);
    if (!list.some((e) => JSON.stringify(e.value) === JSON.stringify(value))) {
      const error =
        details.errorInstance instanceof Error
          ? details.errorInstance.message
          : String(details.errorInstance);
      list.push({ value, error: error.split("\n")[0]!.slice(0, 300) });
      mkdirSync(CORPUS, { recursive: true });
      writeFileSync(file, `${JSON.stringify(entries, null, 2)}\n`);
    }
  }
  throw new Error(`${fc.defaultReportMessage(details)}\n(counterexample kept in ${file.pathname})`, {
    cause: details.errorInstance,
  });
}

function load(target: string): Record<string, Entry[]> {
  const file = new URL(`${target}.json`, CORPUS);
  return existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
}

// JSON with tags for what JSON cannot hold. A plain object that looks like a tag is wrapped.
const TAGS = ["$bytes", "$undefined", "$number", "$bigint", "$object"];

export function encode(v: unknown): unknown {
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v).toString("hex") };
  if (v === undefined) return { $undefined: true };
  if (typeof v === "bigint") return { $bigint: v.toString() };
  if (Object.is(v, -0)) return { $number: "-0" };
  if (typeof v === "number" && !Number.isFinite(v)) return { $number: String(v) };
  if (Array.isArray(v)) return v.map(encode);
  if (v !== null && typeof v === "object") {
    const out = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, encode(x)]));
    const keys = Object.keys(out);
    return keys.length === 1 && TAGS.includes(keys[0]!) ? { $object: out } : out;
  }
  return v;
}

export function decode(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(decode);
  if (v === null || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1) {
    if ("$bytes" in o) return Buffer.from(o.$bytes as string, "hex");
    if ("$undefined" in o) return undefined;
    if ("$bigint" in o) return BigInt(o.$bigint as string);
    if ("$number" in o) return o.$number === "-0" ? -0 : Number(o.$number);
    if ("$object" in o)
      return Object.fromEntries(Object.entries(o.$object as object).map(([k, x]) => [k, decode(x)]));
  }
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decode(x)]));
}
