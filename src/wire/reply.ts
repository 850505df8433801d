/**
 * Reading an upstream reply's rcode, and the header-only error reply.
 *
 * Some servers answer a query they reject with a header and no question section (QDCOUNT=0):
 * NSD answers class NONE/HS REFUSED and a query signed with an unknown TSIG key NOTAUTH so,
 * BIND answers FORMERR so. forward's `takeReply` accepts such a reply when its rcode is an error (it
 * matched the ID on the upstream's socket or connection); the client then gets that rcode
 * with its own ID and question (`restoreQuestion`) — a reply without a question would
 * confuse stub resolvers and cannot be cached. CoreDNS answers FORMERR in this case (its
 * request.Match fails); we keep the upstream's rcode, which says more (REFUSED, NOTAUTH).
 * Every byte read is bounds-checked; malformed records past the header give the header rcode.
 */
import { buildEmptyResponse, scanResponse, type QueryLike, type ResponseScan } from './message.ts';
import { headerRcode, questionCount, setMessageFlags, messageFlags } from './header.ts';
import { Flag } from './codes.ts';

/**
 * Full rcode of a reply (header bits and the OPT's extended bits, RFC 6891 §6.1.3) as
 * scanResponse reads it, a header-only reply (QDCOUNT 0) included; a reply that does not scan
 * gives the header's 4 bits. The bytes are passed on unchanged either way.
 */
export function replyFullRcode(buf: Uint8Array, len: number, scan: ResponseScan): number {
  return scanResponse(buf, len, scan, true) ? scan.rcode : headerRcode(buf);
}

/** A reply (len >= 12) with no question section and an error rcode. */
export function isHeaderOnlyError(buf: Uint8Array, len: number, scan: ResponseScan): boolean {
  return questionCount(buf) === 0 && replyFullRcode(buf, len, scan) !== 0;
}

/**
 * The client's answer for a header-only error reply with full rcode `rcode`: the upstream's
 * flags and rcode, the client's question, an OPT when the client used EDNS or the rcode needs
 * one; no other records (a header-only reply carries none the client could use: its
 * compression pointers would not survive the question being put back, and a TSIG error
 * record is unsigned). The ID is set by the caller.
 */
export function restoreQuestion(q: QueryLike, buf: Uint8Array, rcode: number): Buffer {
  const out = buildEmptyResponse(q, rcode);
  setMessageFlags(out, (messageFlags(buf) & ~Flag.RCODE_MASK) | (rcode & Flag.RCODE_MASK));
  return out;
}
