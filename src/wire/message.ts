/**
 * Whole-message helpers that work on the bytes: scanning a response's records (for caching:
 * TTL offsets, minimum TTL, SOA for RFC 2308 negative TTLs, the OPT record) and building
 * the small responses a server sends itself (errors, truncation). No decoding to objects.
 */
import { Edns, Flag, Header, QType } from './codes.ts';
import { skipName, equalBytesCI } from './name.ts';
import { setCounts, setMessageId, setU16, u16, u32 } from './header.ts';

/** Result of scanning a response. Reusable: `scanResponse` overwrites every field. */
export class ResponseScan {
  /** Full rcode: header's 4 bits plus the OPT's extended bits (RFC 6891 §6.1.3). */
  rcode = 0;
  flags = 0;
  /** 1, or 0 for a header-only reply scanned with `noQuestion` (then qnameEnd = questionEnd = 12). */
  qdcount = 0;
  qnameEnd = 0;
  questionEnd = 0;
  qtype = 0;
  qclass = 0;
  ancount = 0;
  nscount = 0;
  arcount = 0;
  /** Offsets of the 32-bit TTL field of each record except OPT, in message order. */
  ttlOffsets: number[] = [];
  /** Minimum TTL over answer, authority and additional records (OPT excluded); -1 if none. */
  minTtl = -1;
  /** Minimum TTL over the answer section only; -1 if empty. */
  answerMinTtl = -1;
  /** RFC 2308 §5: min(SOA TTL, SOA MINIMUM) of the first SOA in authority; -1 if none. */
  soaNegativeTtl = -1;
  /** Start and end of the OPT record, or -1. */
  optStart = -1;
  optEnd = -1;
  optUdpSize = 0;
  optDo = false;
  /** Offset just past the last record. */
  end = 0;
  /** Number of records that are not OPT. */
  recordCount = 0;
}

/**
 * Scans a response in buf[0..len): header, one question, every record's boundaries, and the
 * full rcode (the header's 4 bits and the OPT's extended bits). Returns false (never throws)
 * for anything malformed: a bad name or pointer, a record running past the end, QDCOUNT other
 * than 1 (or 0 when `noQuestion` allows a header-only reply, e.g. NSD's REFUSED to class NONE),
 * more than one OPT or an OPT outside the additional section.
 */
export function scanResponse(buf: Uint8Array, len: number, out: ResponseScan, noQuestion = false): boolean {
  if (len < Header.SIZE) return false;
  const flags = u16(buf, Header.FLAGS);
  out.flags = flags;
  out.rcode = flags & Flag.RCODE_MASK;
  const qd = u16(buf, Header.QDCOUNT);
  out.qdcount = qd;
  out.ancount = u16(buf, Header.ANCOUNT);
  out.nscount = u16(buf, Header.NSCOUNT);
  out.arcount = u16(buf, Header.ARCOUNT);
  out.ttlOffsets.length = 0;
  out.minTtl = -1;
  out.answerMinTtl = -1;
  out.soaNegativeTtl = -1;
  out.optStart = -1;
  out.optEnd = -1;
  out.optUdpSize = 0;
  out.optDo = false;
  out.recordCount = 0;
  let pos: number = Header.SIZE;
  if (qd === 1) {
    pos = skipName(buf, Header.SIZE, len);
    if (pos < 0 || pos + 4 > len) return false;
    out.qnameEnd = pos;
    out.qtype = u16(buf, pos);
    out.qclass = u16(buf, pos + 2);
    pos += 4;
  } else if (qd === 0 && noQuestion) {
    out.qnameEnd = pos;
    out.qtype = 0;
    out.qclass = 0;
  } else {
    return false;
  }
  out.questionEnd = pos;
  const total = out.ancount + out.nscount + out.arcount;
  for (let i = 0; i < total; i++) {
    const rrStart = pos;
    pos = skipName(buf, pos, len);
    if (pos < 0 || pos + 10 > len) return false;
    const type = u16(buf, pos);
    const rdlen = u16(buf, pos + 8);
    const rdata = pos + 10;
    if (rdata + rdlen > len) return false;
    if (type === QType.OPT) {
      if (out.optStart >= 0 || i < out.ancount + out.nscount) return false;
      out.optStart = rrStart;
      out.optEnd = rdata + rdlen;
      out.optUdpSize = u16(buf, pos + 2);
      out.rcode |= buf[pos + 4]! << 4;
      out.optDo = (u16(buf, pos + 6) & Edns.DO) !== 0;
    } else {
      const ttl = u32(buf, pos + 4);
      // RFC 2181 §8: a TTL with the top bit set is treated as zero.
      const ttlSec = ttl > 0x7fffffff ? 0 : ttl;
      out.ttlOffsets.push(pos + 4);
      out.recordCount++;
      if (out.minTtl < 0 || ttlSec < out.minTtl) out.minTtl = ttlSec;
      if (i < out.ancount && (out.answerMinTtl < 0 || ttlSec < out.answerMinTtl)) out.answerMinTtl = ttlSec;
      if (type === QType.SOA && i >= out.ancount && i < out.ancount + out.nscount && out.soaNegativeTtl < 0) {
        // SOA RDATA: MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM (RFC 1035 §3.3.13).
        let p = skipName(buf, rdata, rdata + rdlen);
        if (p >= 0) p = skipName(buf, p, rdata + rdlen);
        // Names in RDATA may point anywhere earlier in the message: re-skip against the whole buffer.
        if (p < 0) {
          p = skipName(buf, rdata, len);
          if (p >= 0) p = skipName(buf, p, len);
        }
        if (p >= 0 && p + 20 <= rdata + rdlen) {
          const minimum = u32(buf, p + 16);
          out.soaNegativeTtl = Math.min(ttlSec, minimum > 0x7fffffff ? 0 : minimum);
        }
      }
    }
    pos = rdata + rdlen;
  }
  out.end = pos;
  return true;
}

/**
 * True when the response's question equals the query's: same qtype and qclass, same name
 * compared case-insensitively (RFC 5452 §9.1 acceptance). The query's qname is
 * query[12..queryQnameEnd) and is uncompressed; so must the response's be.
 */
export function questionMatches(query: Uint8Array, queryQnameEnd: number, resp: Uint8Array, respLen: number): boolean {
  const nameLen = queryQnameEnd - Header.SIZE;
  if (respLen < queryQnameEnd + 4 || u16(resp, Header.QDCOUNT) !== 1) return false;
  if (!equalBytesCI(query, Header.SIZE, resp, Header.SIZE, nameLen)) return false;
  return u16(query, queryQnameEnd) === u16(resp, queryQnameEnd) && u16(query, queryQnameEnd + 2) === u16(resp, queryQnameEnd + 2);
}

/** Writes an OPT record (RFC 6891 §6.1.2) with no options at buf[pos]; returns the new end. */
export function writeOpt(buf: Uint8Array, pos: number, udpSize: number, extRcode: number, dnssecOk: boolean): number {
  buf[pos] = 0;
  buf[pos + 1] = 0;
  buf[pos + 2] = QType.OPT;
  buf[pos + 3] = (udpSize >>> 8) & 0xff;
  buf[pos + 4] = udpSize & 0xff;
  buf[pos + 5] = extRcode & 0xff;
  buf[pos + 6] = 0;
  buf[pos + 7] = dnssecOk ? 0x80 : 0;
  buf[pos + 8] = 0;
  buf[pos + 9] = 0;
  buf[pos + 10] = 0;
  return pos + Edns.OPT_FIXED_SIZE;
}

export interface QueryLike {
  msg: Uint8Array;
  id: number;
  flags: number;
  /** Offset past the question, or 0 when the question could not be parsed. */
  questionEnd: number;
  edns: boolean;
  dnssecOk: boolean;
  /** The client's EDNS payload size (>= 512); echoed in our OPT as CoreDNS does (SizeAndDo). */
  udpSize?: number;
}

function echoedSize(q: QueryLike): number {
  return q.udpSize !== undefined && q.udpSize >= 512 ? q.udpSize : Edns.ADVERTISED_UDP_SIZE;
}

/**
 * A response with no records: the query's ID, opcode, RD and CD, QR set (RA clear, as
 * miekg/dns's SetRcode leaves it), the given
 * rcode (extended rcodes go in the OPT, RFC 6891 §6.1.3), the question echoed when it was
 * parsed, and an OPT when the query had one.
 */
export function buildEmptyResponse(q: QueryLike, rcode: number): Buffer {
  const qlen = q.questionEnd > 0 ? q.questionEnd - Header.SIZE : 0;
  const withOpt = q.edns || rcode > 15;
  const out = Buffer.allocUnsafe(Header.SIZE + qlen + (withOpt ? Edns.OPT_FIXED_SIZE : 0));
  const flags = Flag.QR | (q.flags & (Flag.OPCODE_MASK | Flag.RD | Flag.CD)) | (rcode & Flag.RCODE_MASK);
  setMessageId(out, q.id);
  setU16(out, Header.FLAGS, flags);
  setCounts(out, qlen > 0 ? 1 : 0, 0, 0, withOpt ? 1 : 0);
  if (qlen > 0) out.set(q.msg.subarray(Header.SIZE, q.questionEnd), Header.SIZE);
  if (withOpt) writeOpt(out, Header.SIZE + qlen, q.edns ? echoedSize(q) : Edns.ADVERTISED_UDP_SIZE, rcode >>> 4, q.dnssecOk);
  return out;
}

/**
 * The minimal truncated form of a response too large for the client's UDP size (RFC 1035
 * §4.2.1, RFC 6891 §7): header with TC set and no records, the query's question, and an OPT
 * when the client used EDNS. truncate.ts falls back to it for a response it cannot cut
 * record by record (malformed, or signed with TSIG).
 */
export function buildTruncated(q: QueryLike, resp: Uint8Array): Buffer {
  const qlen = q.questionEnd - Header.SIZE;
  const out = Buffer.allocUnsafe(Header.SIZE + qlen + (q.edns ? Edns.OPT_FIXED_SIZE : 0));
  setMessageId(out, u16(resp, Header.ID));
  setU16(out, Header.FLAGS, u16(resp, Header.FLAGS) | Flag.TC);
  setCounts(out, 1, 0, 0, q.edns ? 1 : 0);
  out.set(q.msg.subarray(Header.SIZE, q.questionEnd), Header.SIZE);
  if (q.edns) writeOpt(out, Header.SIZE + qlen, echoedSize(q), 0, q.dnssecOk);
  return out;
}

/**
 * A query with one question (the uncompressed wire name `qname`) and no records: ID `id`,
 * flags word `flags` (opcode QUERY unless given). For the queries the server makes itself
 * (forward's health probes, loop's probe).
 */
export function buildQuery(qname: Uint8Array, qtype: number, qclass: number, id: number, flags: number): Buffer {
  const out = Buffer.alloc(Header.SIZE + qname.length + 4);
  setMessageId(out, id);
  setU16(out, Header.FLAGS, flags);
  setCounts(out, 1, 0, 0, 0);
  out.set(qname, Header.SIZE);
  setU16(out, Header.SIZE + qname.length, qtype);
  setU16(out, Header.SIZE + qname.length + 2, qclass);
  return out;
}
