/**
 * The stack binding: DNS on the gateway address, port 53, UDP and TCP — the server DHCP hands
 * to guests by default. Flows that are not DNS to the gateway are left to the next policy.
 */
import type { FlowInfo, FlowPolicy } from "@desktopd/core";
import type { DnsHandler } from "./handler.js";

/** The flow policy this binding fills in: DNS to the gateway served here, the rest left to others. */
export type GatewayDnsPolicy = Required<Pick<FlowPolicy, "tcp" | "udp">>;

/** A guest flow as the policy sees it. */
export type GuestFlow = FlowInfo;

/** `gateway`: the gateway's address, or several (its IPv4 and IPv6 ones). */
export function gatewayDnsPolicy(
  handler: DnsHandler,
  gateway: string | readonly string[],
  port = 53,
): GatewayDnsPolicy {
  const addresses = new Set(typeof gateway === "string" ? [gateway] : gateway);
  const ours = (dstIp: string, dstPort: number) => addresses.has(dstIp) && dstPort === port;
  return {
    udp(flow) {
      if (!ours(flow.dstIp, flow.dstPort)) return undefined;
      const client = `${flow.guestIp}:${flow.guestPort}`;
      return {
        action: "handle",
        service: "dns",
        handler: (message, _flow, reply) => {
          const replayed = handler.replay(message, client, "udp");
          if (replayed) return reply(replayed);
          // The stack hands over its own copy of the payload, so keeping it past this call is fine.
          void handler.handle(message, client, "udp").then(
            (r) => r && reply(r),
            () => {},
          );
        },
      };
    },
    tcp(flow) {
      if (!ours(flow.dstIp, flow.dstPort)) return undefined;
      return {
        action: "handle",
        service: "dns",
        handler: (stream) => handler.serveStream(stream, `${flow.guestIp}:${flow.guestPort}`),
      };
    },
  };
}
