/**
 * Typed errors. Each condition has its own class with a stable `code`; `isInstance` checks the
 * code rather than the prototype so it survives two copies of the package.
 */
export class ProxyError extends Error {
  readonly code: string = "ERR_DESKTOPD_PROXY";
  static isInstance(value: unknown): value is ProxyError {
    const code = (value as { code?: unknown } | null)?.code;
    return value instanceof Error && typeof code === "string" && code.startsWith("ERR_DESKTOPD_PROXY");
  }
}

/** A proxy URL or NO_PROXY entry that does not parse; `key` names where it came from. */
export class ProxyConfigError extends ProxyError {
  override readonly code = "ERR_DESKTOPD_PROXY_CONFIG";
  constructor(
    /** Where the value came from: an environment variable, a config key, an API field. */
    readonly key: string,
    readonly problem: string,
  ) {
    super(`${key}: ${problem}`);
  }
  static override isInstance(value: unknown): value is ProxyConfigError {
    return ProxyError.isInstance(value) && value.code === "ERR_DESKTOPD_PROXY_CONFIG";
  }
}
