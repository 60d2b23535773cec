/**
 * Errors a user can cause and fix (bad option, not root, netns missing...). The CLI prints
 * their message as one line and exits 1; anything else is a bug and keeps its stack trace.
 * Each condition has its own class with a stable `code`; `isInstance` checks the code so it
 * survives two copies of the package.
 */
export class DesktopdError extends Error {
  readonly code: string = "ERR_DESKTOPD_APP";
  static isInstance(value: unknown): value is DesktopdError {
    const code = (value as { code?: unknown } | null)?.code;
    return value instanceof Error && typeof code === "string" && code.startsWith("ERR_DESKTOPD_");
  }
}

function codeIs(value: unknown, code: string): boolean {
  return DesktopdError.isInstance(value) && value.code === code;
}

/** A command-line or `runDaemon` option failed validation. */
export class InvalidOptionError extends DesktopdError {
  override readonly code = "ERR_DESKTOPD_INVALID_OPTION";
  static override isInstance(value: unknown): value is InvalidOptionError {
    return codeIs(value, "ERR_DESKTOPD_INVALID_OPTION");
  }
}

/** Creating a device inside another network namespace needs root. */
export class NotRootError extends DesktopdError {
  override readonly code = "ERR_DESKTOPD_NOT_ROOT";
  static override isInstance(value: unknown): value is NotRootError {
    return codeIs(value, "ERR_DESKTOPD_NOT_ROOT");
  }
}

/** /dev/net/tun is missing or not usable (no tun module, or a container without the device). */
export class TunUnavailableError extends DesktopdError {
  override readonly code = "ERR_DESKTOPD_TUN_UNAVAILABLE";
  static override isInstance(value: unknown): value is TunUnavailableError {
    return codeIs(value, "ERR_DESKTOPD_TUN_UNAVAILABLE");
  }
}

/** The named network namespace does not exist (`ip netns add NAME` creates it). */
export class NetnsNotFoundError extends DesktopdError {
  override readonly code = "ERR_DESKTOPD_NETNS_NOT_FOUND";
  constructor(readonly netns: string) {
    super(`network namespace "${netns}" does not exist (create it with: ip netns add ${netns})`);
  }
  static override isInstance(value: unknown): value is NetnsNotFoundError {
    return codeIs(value, "ERR_DESKTOPD_NETNS_NOT_FOUND");
  }
}

/** `desktopd demo` refuses to take over a namespace it did not create. */
export class NetnsExistsError extends DesktopdError {
  override readonly code = "ERR_DESKTOPD_NETNS_EXISTS";
  constructor(readonly netns: string) {
    super(
      `network namespace "${netns}" already exists; remove it (ip netns del ${netns}) ` +
        `or attach to it with: desktopd run --netns ${netns} --configure`,
    );
  }
  static override isInstance(value: unknown): value is NetnsExistsError {
    return codeIs(value, "ERR_DESKTOPD_NETNS_EXISTS");
  }
}

/** A system command (`ip ...`) or file write that configures the guest failed. */
export class GuestConfigError extends DesktopdError {
  override readonly code = "ERR_DESKTOPD_GUEST_CONFIG";
  static override isInstance(value: unknown): value is GuestConfigError {
    return codeIs(value, "ERR_DESKTOPD_GUEST_CONFIG");
  }
}

/** The guest's link went away while running (device deleted, namespace removed). */
export class LinkLostError extends DesktopdError {
  override readonly code = "ERR_DESKTOPD_LINK_LOST";
  static override isInstance(value: unknown): value is LinkLostError {
    return codeIs(value, "ERR_DESKTOPD_LINK_LOST");
  }
}

/** A request to a running daemon's control socket failed (none running, or it refused). */
export class ControlError extends DesktopdError {
  override readonly code = "ERR_DESKTOPD_CONTROL";
  /** The daemon's HTTP status, when it answered with an error. */
  status?: number;
  static override isInstance(value: unknown): value is ControlError {
    return codeIs(value, "ERR_DESKTOPD_CONTROL");
  }
}
