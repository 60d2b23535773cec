/**
 * Typed errors. Each condition has its own class with a stable `code`; `isInstance`
 * checks the code rather than the prototype so it survives two copies of the package.
 */
export class StackError extends Error {
  readonly code: string = "ERR_DESKTOPD_STACK";
  /** An error of this package (any of its codes), not of another desktopd package. */
  static isInstance(value: unknown): value is StackError {
    const code = (value as { code?: unknown } | null)?.code;
    return value instanceof Error && typeof code === "string" && STACK_CODES.has(code);
  }
}

const STACK_CODES = new Set([
  "ERR_DESKTOPD_STACK",
  "ERR_DESKTOPD_WIRE",
  "ERR_DESKTOPD_TRANSPORT",
  "ERR_DESKTOPD_DIAL",
  "ERR_DESKTOPD_CONFIG",
]);

/** Malformed input on the wire: truncated, bad length, bad checksum, unsupported field. */
export class WireError extends StackError {
  override readonly code = "ERR_DESKTOPD_WIRE";
  constructor(
    /** Protocol layer the error was found in, e.g. "ipv4". */
    readonly layer: string,
    /** Short machine-readable reason, used as a drop-counter key: "truncated", "checksum", ... */
    readonly reason: string,
    message?: string,
  ) {
    super(message ?? `${layer}: ${reason}`);
  }
  static override isInstance(value: unknown): value is WireError {
    return StackError.isInstance(value) && (value as StackError).code === "ERR_DESKTOPD_WIRE";
  }
}

/** A transport (TAP, socket...) could not be opened or failed. */
export class TransportError extends StackError {
  override readonly code = "ERR_DESKTOPD_TRANSPORT";
  static override isInstance(value: unknown): value is TransportError {
    return StackError.isInstance(value) && (value as StackError).code === "ERR_DESKTOPD_TRANSPORT";
  }
}

/** A connection into the guest failed: refused (RST), timed out, or the stack closed. */
export class DialError extends StackError {
  override readonly code = "ERR_DESKTOPD_DIAL";
  constructor(
    readonly reason: "refused" | "timeout" | "unreachable" | "closed" | "reset",
    message: string,
  ) {
    super(message);
  }
  static override isInstance(value: unknown): value is DialError {
    return StackError.isInstance(value) && (value as StackError).code === "ERR_DESKTOPD_DIAL";
  }
}

/** Invalid options given to a factory (bad CIDR, MTU out of range, ...). */
export class ConfigError extends StackError {
  override readonly code = "ERR_DESKTOPD_CONFIG";
  static override isInstance(value: unknown): value is ConfigError {
    return StackError.isInstance(value) && (value as StackError).code === "ERR_DESKTOPD_CONFIG";
  }
}
