/**
 * Errors with a stable `code` (as undici's). `isInstance` checks the code, not the prototype, so it
 * survives two copies of a package in one program; each package names its codes as one family.
 */
export class DesktopdError extends Error {
  readonly code: string = "ERR_DESKTOPD";
  /** Any desktopd error, of whatever package. */
  static isInstance(value: unknown): value is DesktopdError {
    return codeOf(value)?.startsWith("ERR_DESKTOPD") === true;
  }
}

/** The `code` of an Error that has a string one. */
export function codeOf(value: unknown): string | undefined {
  const code = (value as { code?: unknown } | null)?.code;
  return value instanceof Error && typeof code === "string" ? code : undefined;
}

/** A family of codes: `family.isInstance(e)` is true for an Error with any of them. */
export function errorFamily(codes: readonly string[]): {
  isInstance(value: unknown): boolean;
  codes: ReadonlySet<string>;
} {
  const set = new Set(codes);
  return { codes: set, isInstance: (value) => set.has(codeOf(value) ?? "") };
}
