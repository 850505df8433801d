/**
 * Truncation of a response that does not fit the client's UDP payload size, as CoreDNS does
 * it (request.ScrubWriter → request.Scrub → miekg/dns Msg.Truncate):
 *  - the limit is the client's EDNS payload size, 512 without EDNS, never below 512;
 *  - the OPT record is taken out first and its length subtracted from the limit; it is put
 *    back at the end, so a truncated answer keeps it (with its extended rcode and options);
 *  - then whole records are kept in message order, answer, authority, additional, as long
 *    as the running size stays <= the limit; the first record that does not fit ends the
 *    walk (no smaller record after it is taken), so what is kept is a prefix of the records;
 *  - TC is set when any record was left out, and kept when it was set already.
 * miekg measures sizes with its own name compression, because it then packs the message
 * compressed. We send the upstream's (or the cache's) bytes as they are, already compressed
 * by the server that made them, so the sizes measured are the bytes sent: the kept records
 * are a byte prefix of the message and every compression pointer in them points backward,
 * into that prefix. With an uncompressed upstream reply we keep fewer records than CoreDNS,
 * which recompresses.
 *
 * The response is untrusted input (an upstream's reply, or a cache entry made from one):
 * every read is bounds-checked and a malformed message (bad name or pointer, a record running
 * past the end, QDCOUNT other than 1, two OPT records or one outside the additional section,
 * a name in a kept record's RDATA that does not decode inside that RDATA with backward
 * pointers) gets the minimal form instead: header and question
 * with TC=1 (and an OPT when the client used EDNS), as does a response carrying TSIG, which
 * miekg does not truncate at all and which cannot lose records without breaking its MAC.
 * Never throws. Allocates only the returned buffer (plus nothing on the common path: the
 * UDP listener calls this only when the response is larger than the limit).
 */
import { Buffer } from 'node:buffer';
import { Edns, Flag, Header, Limits, QType } from './codes.ts';
import { skipName } from './name.ts';
import { buildTruncated, writeOpt, type QueryLike } from './message.ts';

const TSIG = 250;

function u16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

/**
 * True when the RDATA at buf[start..end) of a record of `type` holds well-formed names where
 * that type has them (the types whose names may be compressed, RFC 3597 §4, and those
 * decoders decompress anyway), each ending inside the RDATA with any pointer going backward.
 * Other types carry no names a decoder follows and always pass.
 */
function rdataNamesValid(buf: Uint8Array, type: number, start: number, end: number): boolean {
  let p = start;
  switch (type) {
    case 2: // NS
    case 3: // MD
    case 4: // MF
    case 5: // CNAME
    case 7: // MB
    case 8: // MG
    case 9: // MR
    case 12: // PTR
    case 39: // DNAME
      p = skipName(buf, p, end);
      return p === end;
    case 6: // SOA: MNAME, RNAME, five 32-bit fields
      p = skipName(buf, p, end);
      if (p >= 0) p = skipName(buf, p, end);
      return p >= 0 && p + 20 === end;
    case 14: // MINFO
    case 17: // RP
      p = skipName(buf, p, end);
      if (p >= 0) p = skipName(buf, p, end);
      return p === end;
    case 15: // MX
    case 18: // AFSDB
    case 21: // RT
    case 36: // KX
      if (p + 2 > end) return false;
      p = skipName(buf, p + 2, end);
      return p === end;
    case 26: // PX
      if (p + 2 > end) return false;
      p = skipName(buf, p + 2, end);
      if (p >= 0) p = skipName(buf, p, end);
      return p === end;
    case 33: // SRV
      if (p + 6 > end) return false;
      p = skipName(buf, p + 6, end);
      return p === end;
    default:
      return true;
  }
}

/** What the first walk over the records found; reused, so the walk allocates nothing. */
class Shape {
  questionEnd = 0;
  optStart = -1;
  optEnd = -1;
  hasTsig = false;
}

const shape = new Shape();

/**
 * Walks resp[0..len): header, one question, every record's bounds. Fills `shape`; false for
 * anything malformed.
 */
function walk(resp: Uint8Array, len: number, out: Shape): boolean {
  out.optStart = -1;
  out.optEnd = -1;
  out.hasTsig = false;
  if (len < Header.SIZE || u16(resp, 4) !== 1) return false;
  let pos = skipName(resp, Header.SIZE, len);
  if (pos < 0 || pos + 4 > len) return false;
  pos += 4;
  out.questionEnd = pos;
  const an = u16(resp, 6);
  const ns = u16(resp, 8);
  const total = an + ns + u16(resp, 10);
  for (let i = 0; i < total; i++) {
    const start = pos;
    pos = skipName(resp, pos, len);
    if (pos < 0 || pos + 10 > len) return false;
    const type = u16(resp, pos);
    const end = pos + 10 + u16(resp, pos + 8);
    if (end > len) return false;
    if (type === QType.OPT) {
      if (out.optStart >= 0 || i < an + ns || resp[start] !== 0) return false;
      out.optStart = start;
      out.optEnd = end;
    } else if (type === TSIG) {
      out.hasTsig = true;
    }
    pos = end;
  }
  return true;
}

/**
 * The response msg[0..len) cut down to at most `limit` bytes (raised to 512) as described
 * above, for the query `q` (whose question is echoed by the minimal form). The caller calls
 * this only when len > limit.
 */
export function truncateResponse(q: QueryLike, resp: Uint8Array, len: number, limit: number): Buffer {
  const size = Math.max(limit, Limits.UDP_CLASSIC);
  if (len > resp.length) len = resp.length;
  const s = shape;
  if (!walk(resp, len, s) || s.hasTsig) return buildTruncated(q, resp);
  const questionEnd = s.questionEnd;
  // The OPT that goes out: the response's own, or a fresh one for an EDNS client when the
  // response has none or its own (options and all) leaves no room for the question.
  let optStart = s.optStart;
  let optLen = optStart >= 0 ? s.optEnd - optStart : 0;
  let freshOpt = false;
  if ((optStart < 0 && q.edns) || questionEnd + optLen > size) {
    optStart = -1;
    optLen = q.edns || s.optStart >= 0 ? Edns.OPT_FIXED_SIZE : 0;
    freshOpt = optLen > 0;
  }
  const budget = size - optLen;
  if (questionEnd > budget) return buildTruncated(q, resp);

  // Second walk: the longest prefix of records whose non-OPT bytes fit the budget.
  const an = u16(resp, 6);
  const ns = u16(resp, 8);
  const total = an + ns + u16(resp, 10);
  let pos = questionEnd;
  /** End of the kept prefix; the OPT's bytes, when inside it, do not count against budget. */
  let cut = questionEnd;
  let optInPrefix = false;
  let keptAn = 0;
  let keptNs = 0;
  let keptAr = 0;
  let dropped = false;
  for (let i = 0; i < total; i++) {
    const start = pos;
    const nameEnd = skipName(resp, pos, len);
    const type = u16(resp, nameEnd);
    const rdata = nameEnd + 10;
    const end = rdata + u16(resp, nameEnd + 8);
    pos = end;
    if (start === s.optStart) {
      if (freshOpt) {
        // The response's OPT is replaced: the prefix ends before it (records after it, if
        // any, are left out; the OPT is normally the last record).
        dropped = i + 1 < total;
        break;
      }
      // Nothing dropped so far (the walk stops at the first drop): kept where it stands.
      optInPrefix = true;
      cut = end;
      continue;
    }
    const used = cut - (optInPrefix ? optLen : 0);
    if (used + (end - start) > budget) {
      // miekg stops at the first record that does not fit, in whichever section.
      dropped = true;
      break;
    }
    if (!rdataNamesValid(resp, type, rdata, end)) return buildTruncated(q, resp);
    cut = end;
    if (i < an) keptAn++;
    else if (i < an + ns) keptNs++;
    else keptAr++;
  }

  const appendOpt = !optInPrefix && (optStart >= 0 || freshOpt);
  const outLen = cut + (appendOpt ? optLen : 0);
  const out = Buffer.allocUnsafe(outLen);
  if (resp instanceof Buffer) resp.copy(out, 0, 0, cut);
  else out.set(resp.subarray(0, cut), 0);
  if (dropped || (resp[2]! & (Flag.TC >>> 8)) !== 0) out[2] = out[2]! | (Flag.TC >>> 8);
  const ar = keptAr + (optInPrefix || appendOpt ? 1 : 0);
  out[6] = keptAn >>> 8;
  out[7] = keptAn & 0xff;
  out[8] = keptNs >>> 8;
  out[9] = keptNs & 0xff;
  out[10] = ar >>> 8;
  out[11] = ar & 0xff;
  if (appendOpt) {
    if (freshOpt) {
      // The response's extended rcode (its OPT's owner is the root: TTL byte 0 is at +5).
      const ext = s.optStart >= 0 ? resp[s.optStart + 5]! : 0;
      const udp = q.edns && q.udpSize !== undefined && q.udpSize >= 512 ? q.udpSize : Edns.ADVERTISED_UDP_SIZE;
      writeOpt(out, cut, udp, ext, q.dnssecOk);
    } else if (resp instanceof Buffer) {
      resp.copy(out, cut, optStart, optStart + optLen);
    } else {
      out.set(resp.subarray(optStart, optStart + optLen), cut);
    }
  }
  return out;
}
