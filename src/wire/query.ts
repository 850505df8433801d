/**
 * Hot-path parsing of a client query straight into its ParsedQuery (the Request extends it):
 * header, the single question (uncompressed qname, label count, case-folded hash) and the
 * EDNS(0) OPT record.
 * Builds no strings and allocates nothing; never throws.
 *
 * Acceptance follows miekg/dns's DefaultMsgAcceptFunc, which CoreDNS serves with:
 * responses are ignored (dropped), QDCOUNT must be 1, ANCOUNT at most 1 (NOTIFY's SOA, RFC
 * 1996), NSCOUNT at most 1 (IXFR's SOA, RFC 1995), ARCOUNT at most 2; a record that does not
 * parse is FORMERR. Such an accepted query is forwarded as it is and the upstream decides
 * (NSD: FORMERR), as with CoreDNS. Opcodes other than QUERY are NOTIMP (miekg also takes
 * NOTIFY, which a cache has no use for). Stricter than miekg, deliberately: the qname must be
 * uncompressed and the question complete (miekg takes a question cut after the name or the
 * qtype, with qclass 0), and a second OPT is FORMERR (RFC 6891 §6.1.1).
 */
import { Edns, Flag, Header, Limits, Opcode, QType } from './codes.ts';
import { qnameToString, skipName } from './name.ts';
import { u16 } from './header.ts';

export const ParseResult = {
  OK: 0,
  /** Not answerable (no header, or a response): drop and count. */
  DROP: 1,
  FORMERR: 2,
  NOTIMP: 3,
  /** EDNS version above 0 (RFC 6891 §6.1.3). */
  BADVERS: 4,
} as const;
export type ParseResultValue = (typeof ParseResult)[keyof typeof ParseResult];

/**
 * A client query's bytes and what `parseQuery` read from them. The server's Request extends
 * it, so every request owns its parsed question (nothing is shared between queries) and the
 * hit path allocates no second object. Label positions are not stored: they are walked from
 * the request's own bytes when asked (`labelStart`; zone matching needs none, see zone-match.ts).
 */
export class ParsedQuery {
  /** The client's message. Valid for the request's lifetime (callers hand over ownership). */
  msg: Buffer;
  msgLen: number;

  /** Header fields. */
  id = 0;
  /** The 16-bit flags word of the query (QR, opcode, RD, CD, ...). */
  flags = 0;
  /** Offset just past the question's qname (the qname itself is msg[12..qnameEnd)). */
  qnameEnd = 0;
  /** Offset just past the question (qnameEnd + 4). */
  questionEnd = 0;
  qtype = 0;
  qclass = 0;
  /** Number of labels in the qname, the root not counted. */
  labelCount = 0;
  /** FNV-1a hash of the case-folded qname, as a signed 32-bit integer. */
  nameHash = 0;

  /** EDNS(0): whether the query carried an OPT record, and its values (RFC 6891 §6.1). */
  edns = false;
  ednsVersion = 0;
  /** Client's advertised UDP payload size, clamped to >= 512; 512 without EDNS. */
  udpSize = 512;
  /** DNSSEC OK bit (RFC 3225). */
  dnssecOk = false;
  /** Offset of the OPT RR in msg, or -1. */
  optOffset = -1;

  private cachedName: string | null = null;

  constructor(msg: Buffer, msgLen: number) {
    this.msg = msg;
    this.msgLen = msgLen;
  }

  get recursionDesired(): boolean {
    return (this.flags & Flag.RD) !== 0;
  }

  get checkingDisabled(): boolean {
    return (this.flags & Flag.CD) !== 0;
  }

  /** Offset in msg of label i's length byte (0 <= i < labelCount), walked from the question. */
  labelStart(i: number): number {
    let p: number = Header.SIZE;
    for (let k = 0; k < i; k++) p += this.msg[p]! + 1;
    return p;
  }

  /** The qname as text, fully qualified, as the client wrote it (slow path: logs, errors). */
  name(): string {
    if (this.cachedName === null) this.cachedName = qnameToString(this.msg, Header.SIZE, this.qnameEnd);
    return this.cachedName;
  }

  /** After `msg` was replaced and parsed again (rewrite): the qname text to report, or null to read it from msg. */
  resetName(name: string | null = null): void {
    this.cachedName = name;
  }
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Fills req's header, question and EDNS fields from req.msg[0..req.msgLen).
 * On FORMERR/NOTIMP/BADVERS the header fields (id, flags) are valid so an error
 * response can be built; question fields are valid whenever questionEnd > 0.
 */
export function parseQuery(req: ParsedQuery): ParseResultValue {
  const buf = req.msg;
  const len = req.msgLen;
  req.questionEnd = 0;
  req.edns = false;
  req.ednsVersion = 0;
  req.udpSize = Limits.UDP_CLASSIC;
  req.dnssecOk = false;
  req.optOffset = -1;
  if (len < Header.SIZE) return ParseResult.DROP;
  req.id = u16(buf, Header.ID);
  const flags = u16(buf, Header.FLAGS);
  req.flags = flags;
  if ((flags & Flag.QR) !== 0) return ParseResult.DROP;
  const opcode = (flags & Flag.OPCODE_MASK) >>> Flag.OPCODE_SHIFT;
  if (opcode !== Opcode.QUERY) return ParseResult.NOTIMP;
  const qdcount = u16(buf, Header.QDCOUNT);
  const ancount = u16(buf, Header.ANCOUNT);
  const nscount = u16(buf, Header.NSCOUNT);
  const arcount = u16(buf, Header.ARCOUNT);
  if (qdcount !== 1 || ancount > 1 || nscount > 1 || arcount > 2) return ParseResult.FORMERR;

  // Question name: uncompressed labels only (nothing precedes it that a pointer could target).
  let pos: number = Header.SIZE;
  let hash = FNV_OFFSET;
  let labels = 0;
  for (;;) {
    if (pos >= len) return ParseResult.FORMERR;
    const l = buf[pos]!;
    if (l === 0) {
      hash = Math.imul(hash ^ 0, FNV_PRIME);
      pos++;
      break;
    }
    if (l > Limits.MAX_LABEL) return ParseResult.FORMERR;
    if (pos + 1 + l > len || pos + 1 + l - Header.SIZE >= Limits.MAX_NAME_WIRE) return ParseResult.FORMERR;
    labels++;
    hash = Math.imul(hash ^ l, FNV_PRIME);
    const end = pos + 1 + l;
    for (let i = pos + 1; i < end; i++) {
      let c = buf[i]!;
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      hash = Math.imul(hash ^ c, FNV_PRIME);
    }
    pos = end;
  }
  if (pos + 4 > len) return ParseResult.FORMERR;
  req.qnameEnd = pos;
  req.labelCount = labels;
  // Signed 32-bit: a small integer to V8, so objects storing it (cache entries) need no number box.
  req.nameHash = hash | 0;
  req.qtype = (buf[pos]! << 8) | buf[pos + 1]!;
  req.qclass = (buf[pos + 2]! << 8) | buf[pos + 3]!;
  pos += 4;
  req.questionEnd = pos;
  if (arcount === 0 && nscount === 0 && ancount === 0) return ParseResult.OK;

  // Answer and authority (a SOA in NOTIFY/IXFR-shaped queries) and additional records:
  // every one must parse; the OPT is the additional one.
  const total = ancount + nscount + arcount;
  const additionalFrom = ancount + nscount;
  let seenOpt = false;
  for (let i = 0; i < total; i++) {
    const rrStart = pos;
    pos = skipName(buf, pos, len);
    if (pos < 0 || pos + 10 > len) return ParseResult.FORMERR;
    const type = (buf[pos]! << 8) | buf[pos + 1]!;
    const rdlen = (buf[pos + 8]! << 8) | buf[pos + 9]!;
    if (pos + 10 + rdlen > len) return ParseResult.FORMERR;
    if (type === QType.OPT && i >= additionalFrom) {
      // RFC 6891 §6.1.1: one OPT, owner is the root.
      if (seenOpt || buf[rrStart] !== 0) return ParseResult.FORMERR;
      seenOpt = true;
      const size = (buf[pos + 2]! << 8) | buf[pos + 3]!;
      req.edns = true;
      req.optOffset = rrStart;
      req.udpSize = Math.max(size, Edns.MIN_UDP_SIZE);
      req.ednsVersion = buf[pos + 5]!;
      req.dnssecOk = (((buf[pos + 6]! << 8) | buf[pos + 7]!) & Edns.DO) !== 0;
      if (!validOptions(buf, pos + 10, pos + 10 + rdlen)) return ParseResult.FORMERR;
    }
    pos += 10 + rdlen;
  }
  if (req.edns && req.ednsVersion > 0) return ParseResult.BADVERS;
  return ParseResult.OK;
}

/** RFC 6891 §6.1.2: OPT RDATA is a sequence of {code, length, data} that must fit exactly. */
function validOptions(buf: Uint8Array, start: number, end: number): boolean {
  let p = start;
  while (p < end) {
    if (p + 4 > end) return false;
    const olen = (buf[p + 2]! << 8) | buf[p + 3]!;
    p += 4 + olen;
  }
  return p === end;
}
