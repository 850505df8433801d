/**
 * Hot-path parsing of a client query straight into a Request: header, the single question
 * (uncompressed qname, label offsets, case-folded hash) and the EDNS(0) OPT record.
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
import { skipName } from './name.ts';
import type { Request } from '../server/request.ts';

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

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Fills req's header, question and EDNS fields from req.msg[0..req.msgLen).
 * On FORMERR/NOTIMP/BADVERS the header fields (id, flags) are valid so an error
 * response can be built; question fields are valid whenever questionEnd > 0.
 */
export function parseQuery(req: Request): ParseResultValue {
  const buf = req.msg;
  const len = req.msgLen;
  req.questionEnd = 0;
  req.edns = false;
  req.ednsVersion = 0;
  req.udpSize = Limits.UDP_CLASSIC;
  req.dnssecOk = false;
  req.optOffset = -1;
  if (len < Header.SIZE) return ParseResult.DROP;
  req.id = (buf[0]! << 8) | buf[1]!;
  const flags = (buf[2]! << 8) | buf[3]!;
  req.flags = flags;
  if ((flags & Flag.QR) !== 0) return ParseResult.DROP;
  const opcode = (flags & Flag.OPCODE_MASK) >>> Flag.OPCODE_SHIFT;
  if (opcode !== Opcode.QUERY) return ParseResult.NOTIMP;
  const qdcount = (buf[4]! << 8) | buf[5]!;
  const ancount = (buf[6]! << 8) | buf[7]!;
  const nscount = (buf[8]! << 8) | buf[9]!;
  const arcount = (buf[10]! << 8) | buf[11]!;
  if (qdcount !== 1 || ancount > 1 || nscount > 1 || arcount > 2) return ParseResult.FORMERR;

  // Question name: uncompressed labels only (nothing precedes it that a pointer could target).
  let pos: number = Header.SIZE;
  let hash = FNV_OFFSET;
  let labels = 0;
  const offsets = req.labelOffsets;
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
    offsets[labels++] = pos - Header.SIZE;
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
      req.udpSize = size < Edns.MIN_UDP_SIZE ? Edns.MIN_UDP_SIZE : size;
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
