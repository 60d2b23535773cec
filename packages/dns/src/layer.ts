import type { Answer, Question } from "dns-packet";

/** Response codes this server produces or passes on (RFC 1035 §4.1.1, RFC 6891 BADVERS). */
export const RCODES = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = keyof typeof RCODES;

/** What one layer answers. NODATA is `NOERROR` with no answer of the asked type. */
export interface Resolution {
  rcode: Rcode;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
  /** Set by layers that own the name (fixed records, registry): the AA flag. */
  authoritative: boolean;
  /** Served from the cache rather than asked upstream. */
  cached?: boolean;
}

/**
 * One resolver layer. `resolve` returns undefined when the name is not this layer's, so the next
 * layer is asked ("first match wins"); a rejection becomes SERVFAIL.
 */
export interface Layer {
  readonly name: string;
  resolve(question: Question): Resolution | undefined | Promise<Resolution | undefined>;
  /**
   * Its answer to a question stays the same for a moment (static records, answers of the DNS
   * cache), so the server may replay it to the next identical query. Default false.
   */
  readonly steady?: boolean;
  /**
   * Whether it may start or stop claiming `question` at any moment without notice (names of a
   * lease table): then no answer to it may be replayed, whichever layer after it gave it.
   */
  volatile?(question: Question): boolean;
  close?(): void;
}

export function resolution(
  rcode: Rcode,
  answers: Answer[] = [],
  authoritative = false,
  authorities: Answer[] = [],
): Resolution {
  return { rcode, answers, authorities, additionals: [], authoritative };
}

/** dns-packet decodes QTYPE 255 as "ANY", which its types leave out of RecordType. */
export function isAny(q: Question): boolean {
  return (q.type as string) === "ANY";
}
