/**
 * @desktopd/ssh-agent — the host's SSH agent for guests. The host side (`createAgentRelay`)
 * relays each guest connection to `$SSH_AUTH_SOCK`, reading every request so that a policy
 * holds: only listing and signing, only some keys, every signature logged. The guest side
 * (`startGuestRelay`, and the `desktopd-ssh-agent guest` bin, Node built-ins only) serves
 * `/run/host-services/ssh-auth.sock` and carries each connection over TCP to the relay.
 *
 * @example
 * ```ts
 * import net from "node:net";
 * import { createAgentRelay } from "@desktopd/ssh-agent";
 *
 * const relay = createAgentRelay({ policy: { signOnly: true }, onSign: (e) => console.log(e.fingerprint) });
 * net.createServer((socket) => relay.handle(socket)).listen(6022, "127.0.0.1");
 * ```
 */
export { AgentConfigError, AgentProtocolError, SshAgentError } from "./errors.js";
export {
  DEFAULT_GATEWAY,
  DEFAULT_MODE,
  GUEST_SOCKET,
  type GuestRelay,
  type GuestRelayOptions,
  guestCommand,
  SSH_AGENT_PORT,
  startGuestRelay,
} from "./guest.js";
export {
  type AgentPolicy,
  type AgentRelay,
  type AgentRelayCounters,
  type AgentRelayOptions,
  type ClientInfo,
  checkPolicy,
  createAgentRelay,
  type RefusalEvent,
  type SignEvent,
} from "./relay.js";
export {
  type AgentMessage,
  encodeIdentities,
  encodeMessage,
  FAILURE,
  fingerprint,
  type Identity,
  isFingerprint,
  keyType,
  MAX_MESSAGE_BYTES,
  MessageReader,
  MessageType,
  parseIdentities,
  parseSignRequest,
  type SignRequest,
} from "./wire.js";
