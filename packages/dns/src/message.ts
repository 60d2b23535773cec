/**
 * Pure wire functions around dns-packet: vet a query, build a response, truncate for UDP.
 * Nothing here does I/O, so each case is a unit test over bytes.
 */
import * as packet from "dns-packet";
import { RCODES, type Rcode, type Resolution } from "./layer.js";

/** Opcode 0 (QUERY) is the only one served; others get NOTIMP (RFC 1035 §4.1.1). */
const OPCODE_MASK = 0x7800;
const QR = 0x8000;
/** BADVERS is extended rcode 16: 1 in the OPT's upper bits, 0 in the header (RFC 6891 §6.1.3). */
const BADVERS_HIGH = 1;

/** The UDP size without EDNS (RFC 1035 §4.2.1). */
export const CLASSIC_UDP_SIZE = 512;

export type DropReason = "short" | "oversize" | "response";
export type FormerrReason = "undecodable" | "questions" | "name" | "opt" | "opcode" | "edns-version";

export interface Query {
  id: number;
  flags: number;
  question: packet.Question;
  /** The client's OPT record, when it sent one. */
  opt?: packet.OptAnswer;
}

export type Vetted =
  | { ok: true; query: Query }
  /** Too short to carry a header, too long to be a query, or a response: no reply (never answer a response). */
  | { ok: false; reason: DropReason; reply?: undefined }
  /** A header to answer to, but no servable query: reply with FORMERR/NOTIMP/BADVERS. */
  | { ok: false; reason: FormerrReason; reply: Buffer };

/**
 * The longest query served. One question and an OPT record fit in a few hundred bytes; anything
 * far longer is not a query (and a datagram cut to fit a receive buffer must not be read as one).
 */
export const MAX_QUERY_BYTES = 4096;

export function vetQuery(buf: Buffer): Vetted {
  if (buf.length < 12) return { ok: false, reason: "short" };
  if (buf.length > MAX_QUERY_BYTES) return { ok: false, reason: "oversize" };
  const flags = buf.readUInt16BE(2);
  if (flags & QR) return { ok: false, reason: "response" };
  const id = buf.readUInt16BE(0);
  if ((flags & OPCODE_MASK) !== 0)
    return { ok: false, reason: "opcode", reply: headerOnly(id, flags, "NOTIMP") };
  let p: packet.DecodedPacket;
  try {
    p = packet.decode(buf);
  } catch {
    return { ok: false, reason: "undecodable", reply: headerOnly(id, flags, "FORMERR") };
  }
  if (p.questions?.length !== 1)
    return { ok: false, reason: "questions", reply: headerOnly(id, flags, "FORMERR") };
  // dns-packet reads names as dotted UTF-8 text: a label holding a "." or bytes that are not
  // UTF-8 comes back as another name, which we would resolve and echo in place of the client's.
  const asked = packet.encode({ type: "query", id, questions: [p.questions[0]!] }).subarray(12);
  if (!asked.equals(buf.subarray(12, 12 + asked.length)))
    return { ok: false, reason: "name", reply: headerOnly(id, flags, "FORMERR") };
  const opts = (p.additionals ?? []).filter((a): a is packet.OptAnswer => a.type === "OPT");
  if (opts.length > 1) return { ok: false, reason: "opt", reply: headerOnly(id, flags, "FORMERR") };
  const opt = opts[0];
  const question = p.questions[0]!;
  if (opt && opt.ednsVersion !== 0) {
    const reply = packet.encode({
      type: "response",
      id,
      flags: responseFlags(flags, 0),
      questions: [question],
      additionals: [ourOpt(BADVERS_HIGH)],
    });
    return { ok: false, reason: "edns-version", reply };
  }
  return { ok: true, query: { id, flags, question, ...(opt ? { opt } : {}) } };
}

/** How large a UDP response this client takes: its EDNS size (at least 512), capped by ours. */
export function udpLimit(q: Query, ourMax: number): number {
  const theirs = q.opt ? Math.max(CLASSIC_UDP_SIZE, q.opt.udpPayloadSize) : CLASSIC_UDP_SIZE;
  return Math.min(theirs, Math.max(CLASSIC_UDP_SIZE, ourMax));
}

/**
 * Encodes the response. Beyond `limit` bytes the sections are left out and TC set, so the client
 * retries over TCP (RFC 2181 §9: a partial RRset would be taken as complete).
 */
export function encodeResponse(q: Query, r: Resolution, limit = Infinity, ourUdpSize = 1232): Buffer {
  let flags = responseFlags(q.flags, RCODES[r.rcode]) | packet.RECURSION_AVAILABLE;
  if (r.authoritative) flags |= packet.AUTHORITATIVE_ANSWER;
  const edns = q.opt ? [{ ...ourOpt(0), udpPayloadSize: ourUdpSize } as packet.Answer] : [];
  const full = packet.encode({
    type: "response",
    id: q.id,
    flags,
    questions: [q.question],
    answers: r.answers,
    authorities: r.authorities,
    additionals: [...r.additionals, ...edns],
  });
  if (full.length <= limit) return full;
  return packet.encode({
    type: "response",
    id: q.id,
    flags: flags | packet.TRUNCATED_RESPONSE,
    questions: [q.question],
    additionals: edns,
  });
}

/** Copies RD and CD from the query, sets QR and the rcode. */
function responseFlags(queryFlags: number, rcode: number): number {
  return (queryFlags & (packet.RECURSION_DESIRED | packet.CHECKING_DISABLED)) | (rcode & 0xf);
}

function headerOnly(id: number, queryFlags: number, rcode: Rcode): Buffer {
  const flags = (queryFlags & (OPCODE_MASK | packet.RECURSION_DESIRED)) | RCODES[rcode];
  return packet.encode({ type: "response", id, flags, questions: [] });
}

function ourOpt(extendedRcode: number): packet.OptAnswer {
  return {
    type: "OPT",
    name: ".",
    udpPayloadSize: 1232,
    extendedRcode,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  };
}
