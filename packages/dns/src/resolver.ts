/** Asks the layers in order; the first one that claims the name answers. */
import type { Answer, Question } from "dns-packet";
import type { Layer, Resolution } from "./layer.js";
import { resolution } from "./layer.js";
import { normalizeName } from "./name.js";

/** The target of the last CNAME when no record of the asked type follows it. */
function danglingCname(r: Resolution, q: Question): string | undefined {
  const last = r.answers.at(-1);
  if (last?.type !== "CNAME" || q.type === "CNAME") return undefined;
  const target = normalizeName(last.data);
  return r.answers.some((a) => a.type === q.type && normalizeName(a.name) === target) ? undefined : target;
}

export interface Answered extends Resolution {
  /** The layer that answered, "none" when no layer claimed the name. */
  layer: string;
  /**
   * Every layer that gave part of it is steady and none asked before them may claim the name
   * without notice: the same question may be answered the same way for a moment.
   */
  replayable?: boolean;
  /** Why the answer is SERVFAIL, when it is one because a layer failed. */
  error?: Error;
}

export interface Resolver {
  readonly layers: readonly Layer[];
  resolve(question: Question): Promise<Answered>;
  close(): void;
}

/** Seconds a client may cache a local name's absence: short, names come and go with guests. */
export const LOCAL_NEGATIVE_TTL = 5;

/**
 * The SOA a negative answer needs for clients to cache it (RFC 2308 §3), for names this server
 * owns and no upstream vouches for. Local names have no zones of their own: the name's parent
 * stands for one, so siblings share it and the SOA is never owned by the name it denies.
 */
function localSoa(q: Question): Answer {
  const name = normalizeName(q.name);
  const dot = name.indexOf(".");
  const zone = dot >= 0 ? name.slice(dot + 1) : ".";
  return {
    name: zone,
    type: "SOA",
    class: "IN",
    ttl: LOCAL_NEGATIVE_TTL,
    data: {
      mname: "gateway.docker.internal",
      rname: "hostmaster.docker.internal",
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: LOCAL_NEGATIVE_TTL,
    },
  };
}

/** Zone transfers are for secondaries, not guests' stub resolvers: refused, never forwarded. */
const REFUSED_TYPES = new Set(["AXFR", "IXFR"]);

/** How many CNAMEs out of local data are followed through the other layers. */
const MAX_CHASE = 8;

export function createResolver(layers: Layer[]): Resolver {
  const ask = async (q: Question): Promise<Answered> => {
    if (REFUSED_TYPES.has(q.type)) return { ...resolution("REFUSED"), layer: "none" };
    let settled = true;
    for (const layer of layers) {
      try {
        const r = await layer.resolve(q);
        if (r) return { ...r, layer: layer.name, replayable: settled && layer.steady === true };
      } catch (e) {
        return { ...resolution("SERVFAIL"), layer: layer.name, error: e as Error };
      }
      if (layer.volatile?.(q)) settled = false;
    }
    // Nobody owns the name (no host layer configured): say so rather than guess.
    return { ...resolution("REFUSED"), layer: "none" };
  };
  return {
    layers,
    async resolve(q) {
      const first = await ask(q);
      let r = first;
      // A local CNAME pointing elsewhere (a fixed alias of an upstream name) is finished here, as
      // a recursive server would: upstream answers already carry their whole chain.
      for (let hop = 0; hop < MAX_CHASE && r.authoritative && r.rcode === "NOERROR"; hop++) {
        const target = danglingCname(r, q);
        if (target === undefined) break;
        r = await ask({ ...q, name: target });
        first.answers = [...first.answers, ...r.answers];
        first.authorities = r.authorities;
        first.rcode = r.rcode;
        first.authoritative &&= r.authoritative;
        first.replayable = first.replayable === true && r.replayable === true;
        if (r.error) first.error = r.error;
      }
      const negative =
        first.rcode === "NXDOMAIN" || (first.rcode === "NOERROR" && first.answers.length === 0);
      if (first.authoritative && negative && first.authorities.length === 0) {
        first.authorities = [localSoa(q)];
      }
      return first;
    },
    close() {
      for (const l of layers) l.close?.();
    },
  };
}
