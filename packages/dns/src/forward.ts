/**
 * Layer 3: per-domain forwarding (split horizon) — `corp.example` and everything below it goes
 * to the resolver that knows it, e.g. the VPN's. The longest matching domain wins.
 */
import type { Question } from "dns-packet";
import { Forwarder, type ForwarderOptions } from "./forwarder.js";
import type { Layer, Resolution } from "./layer.js";
import { inDomain, normalizeName } from "./name.js";
import type { Upstream } from "./upstream.js";

export interface ForwardRule {
  domain: string;
  servers: Upstream[];
}

export interface ForwardLayerOptions extends ForwarderOptions {
  rules: ForwardRule[];
  /** Share one forwarder (cache, in-flight table) with other layers. */
  forwarder?: Forwarder;
}

export function createForwardLayer(o: ForwardLayerOptions): Layer {
  const forwarder = o.forwarder ?? new Forwarder(o);
  const rules = o.rules
    .map((r) => ({ domain: normalizeName(r.domain), servers: r.servers }))
    .sort((a, b) => b.domain.length - a.domain.length);
  return {
    name: "forward",
    steady: true,
    resolve(q: Question): Promise<Resolution> | undefined {
      const name = normalizeName(q.name);
      const rule = rules.find((r) => inDomain(name, r.domain));
      return rule ? forwarder.resolve(`forward:${rule.domain}`, rule.servers, q) : undefined;
    },
  };
}
