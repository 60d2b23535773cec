/**
 * The config file (`desktopd run --config FILE`): a JSON object with the same keys as the
 * command line's long options in camelCase (`qemuSocket`, `vfkitSocket`, `mtu`...). Options
 * given on the command line win over the file.
 */
import { readFileSync } from "node:fs";
import { InvalidOptionError } from "./errors.js";

export function readConfigFile(path: string, knownKeys: readonly string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InvalidOptionError(
      `--config: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InvalidOptionError(`--config: ${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InvalidOptionError(`--config: ${path} must hold a JSON object`);
  }
  for (const key of Object.keys(parsed)) {
    if (!knownKeys.includes(key)) {
      throw new InvalidOptionError(
        `--config: ${path}: unknown key "${key}" (known: ${knownKeys.join(", ")})`,
      );
    }
  }
  return parsed as Record<string, unknown>;
}

/** The file's values under the command line's: an option the user did not give is undefined. */
export function mergeOptions(
  file: Record<string, unknown>,
  cli: Record<string, unknown>,
): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...file };
  for (const [key, value] of Object.entries(cli)) if (value !== undefined) merged[key] = value;
  return merged;
}
