/**
 * @desktopd/ssh-agent in the daemon: guests' connections to the gateway's port 6022 are served
 * in-process (no host port) by a relay to the host's SSH agent — `--ssh-auth-sock`, else this
 * process's SSH_AUTH_SOCK, off when there is neither. The policy (`--ssh-agent-keys`,
 * `--ssh-agent-sign-only`) and the host socket change on reload; every signature is logged and
 * is an event on the control API.
 */
import net from "node:net";
import {
  type AgentPolicy,
  type AgentRelay,
  type AgentRelayCounters,
  createAgentRelay,
  guestCommand,
  SSH_AGENT_PORT,
} from "@desktopd/ssh-agent";
import type { FlowPolicy, Logger, Stack } from "@desktopd/stack";
import type { RunConfig } from "../config.js";
import type { EventBus } from "../control/events.js";
import { netAddresses } from "../net-addresses.js";
import type { Service } from "./service.js";

export interface SshAgentService extends Service {
  policy(next?: FlowPolicy): FlowPolicy;
  bind(stack: Stack): void;
  counters(): AgentRelayCounters | undefined;
}

const SERVICE = "agent";

type AgentKeys = Pick<RunConfig, "sshAgent" | "sshAuthSock" | "sshAgentKeys" | "sshAgentSignOnly">;

function hostSocket(keys: AgentKeys, env: NodeJS.ProcessEnv): string | undefined {
  if (!keys.sshAgent) return undefined;
  return keys.sshAuthSock ?? (env.SSH_AUTH_SOCK || undefined);
}

function agentPolicy(keys: AgentKeys): AgentPolicy {
  return { signOnly: keys.sshAgentSignOnly, ...(keys.sshAgentKeys ? { keys: keys.sshAgentKeys } : {}) };
}

export function createSshAgentService(
  config: RunConfig,
  events: EventBus,
  logger?: Logger,
  env: NodeJS.ProcessEnv = process.env,
): SshAgentService {
  const log = logger?.child({ component: "ssh-agent" });
  let socket = hostSocket(config, env);
  let gateway: string | undefined;
  /** The gateway's addresses, both families: where guests reach this service. */
  let gateways: ReadonlySet<string> | undefined;
  const relay: AgentRelay = createAgentRelay({
    // Read at each connection: a reload may point it elsewhere.
    connectAgent: () => net.connect(socket ?? "/nonexistent"),
    policy: agentPolicy(config),
    onSign: (e) => events.emit("ssh-agent-sign", { ...e }),
    onRefusal: (e) => events.emit("ssh-agent-refused", { ...e }),
    ...(log ? { logger: log } : {}),
  });
  const describe = () => ({
    listen: gateway && socket ? `${gateway}:${SSH_AGENT_PORT}` : null,
    hostSocket: socket ?? null,
    signOnly: relay.policy.signOnly ?? false,
    keys: relay.policy.keys ?? null,
    guestCommand: gateway ? guestCommand({ host: gateway }) : null,
    counters: relay.counters(),
  });
  return {
    name: "ssh-agent",
    liveKeys: ["sshAgent", "sshAuthSock", "sshAgentKeys", "sshAgentSignOnly"],
    policy(next) {
      return {
        tcp: (flow) => {
          if (socket && gateways?.has(flow.dstIp) && flow.dstPort === SSH_AGENT_PORT) {
            const client = { ip: flow.guestIp, port: flow.guestPort };
            return { action: "handle", service: SERVICE, handler: (stream) => relay.handle(stream, client) };
          }
          return next?.tcp?.(flow);
        },
        udp: (flow) => next?.udp?.(flow),
      };
    },
    bind(stack) {
      gateway = stack.config.gateway;
      gateways = netAddresses(stack.config).gateways;
      if (socket) {
        log?.info(
          { relay: `${gateway}:${SSH_AGENT_PORT}`, agent: socket, ...agentPolicy(config) },
          "ssh agent relay serving",
        );
      } else {
        log?.info({}, "ssh agent relay off: no SSH_AUTH_SOCK (set it, or --ssh-auth-sock PATH)");
      }
    },
    async reload(next) {
      // The policy is checked before anything changes (the config schema checked it already).
      relay.setPolicy(agentPolicy(next));
      socket = hostSocket(next, env);
      log?.info({ agent: socket ?? "off", ...agentPolicy(next) }, "ssh agent relay reconfigured");
      return [];
    },
    counters: () => relay.counters(),
    status: () => ({ sshAgent: describe() }),
    async close() {
      relay.close();
    },
  };
}
