/**
 * Typed errors. Each condition has its own class with a stable `code`; `isInstance` checks the
 * code rather than the prototype so it survives two copies of the package.
 */
export class DnsError extends Error {
  readonly code: string = "ERR_DESKTOPD_DNS";
  static isInstance(value: unknown): value is DnsError {
    const code = (value as { code?: unknown } | null)?.code;
    return value instanceof Error && typeof code === "string" && code.startsWith("ERR_DESKTOPD_DNS");
  }
}

/** Invalid options: a bad address, record, forwarding rule or server. */
export class DnsConfigError extends DnsError {
  override readonly code = "ERR_DESKTOPD_DNS_CONFIG";
  static override isInstance(value: unknown): value is DnsConfigError {
    return DnsError.isInstance(value) && value.code === "ERR_DESKTOPD_DNS_CONFIG";
  }
}

/** The system refused a socket call of the listener (binding a port in use, …). */
export class DnsSocketError extends DnsError {
  override readonly code = "ERR_DESKTOPD_DNS_SOCKET";
  constructor(
    message: string,
    /** The errno's name, as Node's own errors spell it: "EADDRINUSE", "EACCES", … */
    readonly errno: string,
  ) {
    super(message);
  }
  static override isInstance(value: unknown): value is DnsSocketError {
    return DnsError.isInstance(value) && value.code === "ERR_DESKTOPD_DNS_SOCKET";
  }
}

/** No upstream gave a usable answer in time; the client gets SERVFAIL. */
export class UpstreamError extends DnsError {
  override readonly code = "ERR_DESKTOPD_DNS_UPSTREAM";
  constructor(
    /** Counter key: "timeout", "network", "rcode", "no-servers", "lookup", "busy". */
    readonly reason: "timeout" | "network" | "rcode" | "no-servers" | "lookup" | "busy",
    message: string,
  ) {
    super(message);
  }
  static override isInstance(value: unknown): value is UpstreamError {
    return DnsError.isInstance(value) && value.code === "ERR_DESKTOPD_DNS_UPSTREAM";
  }
}
