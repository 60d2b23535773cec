/**
 * Typed errors. Each condition has its own class with a stable `code`; `isInstance` checks the
 * code rather than the prototype so it survives two copies of the package.
 */
export class SshAgentError extends Error {
  readonly code: string = "ERR_DESKTOPD_SSH_AGENT";
  static isInstance(value: unknown): value is SshAgentError {
    const code = (value as { code?: unknown } | null)?.code;
    return value instanceof Error && typeof code === "string" && code.startsWith("ERR_DESKTOPD_SSH_AGENT");
  }
}

/** Bytes that are not the agent protocol: a bad length, a truncated field, an oversized message. */
export class AgentProtocolError extends SshAgentError {
  override readonly code = "ERR_DESKTOPD_SSH_AGENT_PROTOCOL";
  static override isInstance(value: unknown): value is AgentProtocolError {
    return SshAgentError.isInstance(value) && value.code === "ERR_DESKTOPD_SSH_AGENT_PROTOCOL";
  }
}

/** A bad option: a fingerprint that is not `SHA256:...`, a port out of range. */
export class AgentConfigError extends SshAgentError {
  override readonly code = "ERR_DESKTOPD_SSH_AGENT_CONFIG";
  static override isInstance(value: unknown): value is AgentConfigError {
    return SshAgentError.isInstance(value) && value.code === "ERR_DESKTOPD_SSH_AGENT_CONFIG";
  }
}
