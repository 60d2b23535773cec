/**
 * The config file (`desktopd run --config FILE`): JSON or YAML (by extension; a file named
 * otherwise is read as JSON, then YAML) holding an object with the same keys as the command
 * line's long options, in camelCase (`qemuSocket`) or as on the command line (`qemu-socket`).
 * Options given on the command line win over the file.
 */
import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { InvalidOptionError } from "./errors.js";

function camelCase(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function parseText(path: string, text: string): unknown {
  const ext = extname(path).toLowerCase();
  const yaml = () => {
    try {
      return parseYaml(text, { prettyErrors: true, maxAliasCount: 100 });
    } catch (error) {
      throw new InvalidOptionError(
        `--config: ${path} is not valid YAML: ${(error as Error).message.split("\n")[0]}`,
      );
    }
  };
  if (ext === ".yaml" || ext === ".yml") return yaml();
  try {
    return JSON.parse(text);
  } catch (error) {
    if (ext === ".json")
      throw new InvalidOptionError(`--config: ${path} is not valid JSON: ${(error as Error).message}`);
    return yaml();
  }
}

export function readConfigFile(path: string, knownKeys: readonly string[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InvalidOptionError(
      `--config: cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`,
    );
  }
  const parsed = parseText(path, text);
  // An empty YAML file is null: no options.
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new InvalidOptionError(`--config: ${path} must hold an object of options`);
  }
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(parsed)) {
    const name = camelCase(key);
    if (!knownKeys.includes(name)) {
      throw new InvalidOptionError(
        `--config: ${path}: unknown key "${key}" (known: ${knownKeys.join(", ")})`,
      );
    }
    options[name] = value;
  }
  return options;
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
