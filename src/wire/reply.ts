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
import type { Request } from '../server/request.ts';
import { buildEmptyResponse } from './message.ts';
import { skipName } from './name.ts';
import { QType } from './codes.ts';

/**
 * Full rcode of a reply: the header's 4 bits plus the OPT's extended bits (RFC 6891 §6.1.3).
 * Handles QDCOUNT 0 or 1; anything it cannot walk gives the header rcode. The bytes are
 * passed on unchanged either way.
 */
export function fullRcode(buf: Uint8Array, len: number): number {
  const rc = buf[3]! & 0x0f;
  const ar = (buf[10]! << 8) | buf[11]!;
  if (ar === 0) return rc;
  const qd = (buf[4]! << 8) | buf[5]!;
  if (qd > 1) return rc;
  const anns = ((buf[6]! << 8) | buf[7]!) + ((buf[8]! << 8) | buf[9]!);
  let pos = 12;
  if (qd === 1) {
    pos = skipName(buf, 12, len);
    if (pos < 0 || pos + 4 > len) return rc;
    pos += 4;
  }
  const total = anns + ar;
  for (let i = 0; i < total; i++) {
    pos = skipName(buf, pos, len);
    if (pos < 0 || pos + 10 > len) return rc;
    const type = (buf[pos]! << 8) | buf[pos + 1]!;
    if (type === QType.OPT && i >= anns) return rc | (buf[pos + 4]! << 4);
    pos += 10 + ((buf[pos + 8]! << 8) | buf[pos + 9]!);
  }
  return rc;
}

/** A reply (len >= 12) with no question section and an error rcode. */
export function isHeaderOnlyError(buf: Uint8Array, len: number): boolean {
  return buf[4] === 0 && buf[5] === 0 && fullRcode(buf, len) !== 0;
}

/**
 * The client's answer for a header-only error reply: the upstream's flags and (full) rcode,
 * the client's question, an OPT when the client used EDNS or the rcode needs one; no other
 * records (a header-only reply carries none the client could use: its compression pointers
 * would not survive the question being put back, and a TSIG error record is unsigned).
 * The ID is set by the caller.
 */
export function restoreQuestion(req: Request, buf: Uint8Array, len: number): Buffer {
  const rc = fullRcode(buf, len);
  const out = buildEmptyResponse(req, rc);
  out[2] = buf[2]!;
  out[3] = (buf[3]! & 0xf0) | (rc & 0x0f);
  return out;
}
