/**
 * Typed errors. Each condition has its own class with a stable `code`; `isInstance` checks the
 * code rather than the prototype so it survives two copies of the package.
 */
import type { PortHolder } from "./port-holder.js";

export class PortfwdError extends Error {
  readonly code: string = "ERR_DESKTOPD_PORTFWD";
  static isInstance(value: unknown): value is PortfwdError {
    const code = (value as { code?: unknown } | null)?.code;
    return value instanceof Error && typeof code === "string" && code.startsWith("ERR_DESKTOPD_PORTFWD");
  }
}

function codeIs(value: unknown, code: string): boolean {
  return PortfwdError.isInstance(value) && value.code === code;
}

/** A publish spec does not parse. `column` and `length` locate the offending part of `spec`. */
export class SpecError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_SPEC";
  constructor(
    readonly spec: string,
    /** 0-based offset of the offending part in `spec`. */
    readonly column: number,
    readonly length: number,
    /** The problem alone, without the spec, e.g. `container port "80a" is not a number`. */
    readonly problem: string,
  ) {
    super(`publish spec "${spec}": ${problem}${pointer(spec, column, length)}`);
  }
  /** The spec with a caret line under the offending part, for a terminal. */
  caret(): string {
    const width = Math.max(1, this.length);
    return `${this.spec}\n${" ".repeat(this.column)}${"^".repeat(width)}`;
  }
  static override isInstance(value: unknown): value is SpecError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_SPEC");
  }
}

function pointer(spec: string, column: number, length: number): string {
  if (length === 0) return ` (at column ${column + 1})`;
  return ` (at "${spec.slice(column, column + length)}", column ${column + 1})`;
}

/** The host address and port are taken, by another process or by another socket of this one. */
export class PortInUseError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_PORT_IN_USE";
  constructor(
    readonly protocol: "tcp" | "udp",
    readonly address: string,
    readonly port: number,
    /** Who holds it, when /proc tells (Linux, and permission to read the holder's fds). */
    readonly holder?: PortHolder,
  ) {
    const who = holder
      ? `held by ${holder.command} (pid ${holder.pid}${holder.localAddress ? ` on ${holder.localAddress}` : ""})`
      : "held by a process this user cannot see, or a socket not yet released";
    super(`${protocol} ${formatHostPort(address, port)} is already in use: ${who}`);
  }
  static override isInstance(value: unknown): value is PortInUseError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_PORT_IN_USE");
  }
}

/** Binding a port below the unprivileged start (1024 by default) was refused. */
export class PrivilegedPortError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_PRIVILEGED_PORT";
  constructor(
    readonly protocol: "tcp" | "udp",
    readonly address: string,
    readonly port: number,
    /** net.ipv4.ip_unprivileged_port_start: the first port anyone may bind. */
    readonly unprivilegedStart = 1024,
  ) {
    super(
      `${protocol} ${formatHostPort(address, port)}: ports below ${unprivilegedStart} need privileges; run as root, ` +
        `or grant node CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep "$(command -v node)"), ` +
        `or lower the limit (sysctl net.ipv4.ip_unprivileged_port_start=${port}), or publish a port ≥ ${unprivilegedStart}`,
    );
  }
  static override isInstance(value: unknown): value is PrivilegedPortError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_PRIVILEGED_PORT");
  }
}

/** The host address is not one of this machine's (EADDRNOTAVAIL). */
export class AddressNotAvailableError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_ADDRESS_NOT_AVAILABLE";
  constructor(
    readonly protocol: "tcp" | "udp",
    readonly address: string,
    readonly port: number,
  ) {
    super(`${protocol} ${formatHostPort(address, port)}: ${address} is not an address of this host`);
  }
  static override isInstance(value: unknown): value is AddressNotAvailableError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_ADDRESS_NOT_AVAILABLE");
  }
}

/** This forwarder already maps the host port (each host port maps to one target at a time). */
export class ForwardConflictError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_CONFLICT";
  constructor(
    readonly protocol: "tcp" | "udp",
    readonly address: string,
    readonly port: number,
    /** The existing forward's id and target. */
    readonly existing: { id: string; target: string },
  ) {
    super(
      `${protocol} ${formatHostPort(address, port)} is already published (forward ${existing.id} → ${existing.target}); remove it first`,
    );
  }
  static override isInstance(value: unknown): value is ForwardConflictError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_CONFLICT");
  }
}

/** `remove` named a forward that does not exist. */
export class ForwardNotFoundError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_NOT_FOUND";
  static override isInstance(value: unknown): value is ForwardNotFoundError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_NOT_FOUND");
  }
}

/** The dialer has no UDP, or the target address is unknown (no guest lease yet). */
export class TargetUnavailableError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_TARGET_UNAVAILABLE";
  static override isInstance(value: unknown): value is TargetUnavailableError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_TARGET_UNAVAILABLE");
  }
}

/** A createForwarder option is out of range (a NaN limit would unbound the UDP flow table). */
export class PortfwdOptionError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_OPTION";
  static override isInstance(value: unknown): value is PortfwdOptionError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_OPTION");
  }
}

/** The forwarder is closed. */
export class ForwarderClosedError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_CLOSED";
  constructor() {
    super("the forwarder is closed");
  }
  static override isInstance(value: unknown): value is ForwarderClosedError {
    return codeIs(value, "ERR_DESKTOPD_PORTFWD_CLOSED");
  }
}

/** `1.2.3.4:80`, `[::1]:80`. */
export function formatHostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/** An automatic-forward rule that does not parse; the message names the rule and the problem. */
export class AutoForwardRuleError extends PortfwdError {
  override readonly code = "ERR_DESKTOPD_PORTFWD_AUTO_RULE";
  static override isInstance(value: unknown): value is AutoForwardRuleError {
    return PortfwdError.isInstance(value) && value.code === "ERR_DESKTOPD_PORTFWD_AUTO_RULE";
  }
}
