/**
 * The stack binding: DNS on the gateway address, port 53, UDP and TCP — the server DHCP hands
 * to guests by default. Flows that are not DNS to the gateway are left to the next policy.
 */
import type { Duplex } from "node:stream";
import type { DnsHandler } from "./handler.js";

/** What this binding reads of a guest flow (a subset of the stack's `FlowInfo`). */
export interface GuestFlow {
  guestIp: string;
  guestPort: number;
  dstIp: string;
  dstPort: number;
}

/**
 * The part of `@desktopd/stack`'s `FlowPolicy` this binding fills in. It is the same shape, so
 * `createStack({ policy })` takes it as is, without this package depending on the stack.
 */
export interface GatewayDnsPolicy {
  udp(
    flow: GuestFlow,
  ):
    | { action: "handle"; handler: (message: Buffer, flow: GuestFlow, reply: (data: Buffer) => void) => void }
    | undefined;
  tcp(flow: GuestFlow): { action: "handle"; handler: (stream: Duplex) => void } | undefined;
}

export function gatewayDnsPolicy(handler: DnsHandler, gateway: string, port = 53): GatewayDnsPolicy {
  const ours = (dstIp: string, dstPort: number) => dstIp === gateway && dstPort === port;
  return {
    udp(flow) {
      if (!ours(flow.dstIp, flow.dstPort)) return undefined;
      const client = `${flow.guestIp}:${flow.guestPort}`;
      return {
        action: "handle",
        handler: (message, _flow, reply) => {
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
        handler: (stream) => handler.serveStream(stream, `${flow.guestIp}:${flow.guestPort}`),
      };
    },
  };
}
