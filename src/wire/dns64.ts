import { Flag, QType } from './codes.ts';
import type { ResponseScan } from './message.ts';
import { decodeMessage, encodeMessage, formatIPv6, type Message, type RR } from './codec.ts';
import { ipv4Bytes, ipv6Bytes } from './ip.ts';

/** An IPv6 prefix: its 16 address bytes (host bits zero) and its length in bits. */
export interface Ipv6Prefix {
  bytes: Uint8Array;
  length: number;
}

/**
 * Go's net.ParseCIDR: `ADDRESS/LENGTH`. Returns the masked address bytes (4 or 16), the
 * length, and the prefix as Go's IPNet.String() prints it; null when it does not parse.
 */
export function parseCidr(text: string): { bytes: Uint8Array; length: number; text: string } | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const addr = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  const bytes = ipv4Bytes(addr) ?? ipv6Bytes(addr);
  if (bytes === null || !/^[0-9]{1,3}$/.test(lenText)) return null;
  const length = Number(lenText);
  if (length > bytes.length * 8) return null;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, length - 8 * i));
    bytes[i] = bytes[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  const shown = bytes.length === 4 ? bytes.join('.') : formatIPv6(bytes);
  return { bytes, length, text: `${shown}/${length}` };
}

/**
 * RFC 6052 §2.2: the IPv6 address for IPv4 address `v4` (4 bytes) under `prefix` (32, 40, 48,
 * 56, 64 or 96 bits): the IPv4 bytes fill the bits after the prefix, skipping bits 64..71
 * (the "u" octet, always zero); the suffix is zero.
 */
export function embedIPv4(prefix: Ipv6Prefix, v4: Uint8Array): Uint8Array {
  if (v4.length !== 4) throw new RangeError('embedIPv4: not an IPv4 address');
  const out = new Uint8Array(16);
  const n = prefix.length >>> 3;
  out.set(prefix.bytes.subarray(0, n), 0);
  let i = n;
  for (let j = 0; j < 4; j++) {
    if (i === 8) i++; // the u octet
    out[i++] = v4[j]!;
  }
  return out;
}

/**
 * The A query for a client's AAAA query: a copy of msg[0..len) with the qtype at `qnameEnd`
 * (just past the question's name) set to A. Everything else (ID, flags, EDNS) is kept, as
 * CoreDNS's upstream lookup copies the original request.
 */
export function aQueryFor(msg: Uint8Array, len: number, qnameEnd: number): Buffer {
  if (qnameEnd + 4 > len || len > msg.length) throw new RangeError('aQueryFor: question outside the message');
  const out = Buffer.allocUnsafe(len);
  out.set(msg.subarray(0, len), 0);
  out[qnameEnd] = 0;
  out[qnameEnd + 1] = QType.A;
  return out;
}

/** The TYPE of the i-th non-OPT record of a scanned message (its TTL field is 4 bytes after). */
function recordType(s: ResponseScan, msg: Uint8Array, i: number): number {
  const o = s.ttlOffsets[i]! - 4;
  return (msg[o]! << 8) | msg[o + 1]!;
}

/** Whether the answer section of the scanned message holds a record of `type`. */
export function answerHasType(s: ResponseScan, msg: Uint8Array, type: number): boolean {
  const n = Math.min(s.ancount, s.ttlOffsets.length);
  for (let i = 0; i < n; i++) if (recordType(s, msg, i) === type) return true;
  return false;
}

/** TTL of the last SOA record in the authority section of the scanned message; -1 when none. */
export function authoritySoaTtl(s: ResponseScan, msg: Uint8Array): number {
  let ttl = -1;
  const end = Math.min(s.ancount + s.nscount, s.ttlOffsets.length);
  for (let i = s.ancount; i < end; i++) {
    if (recordType(s, msg, i) !== QType.SOA) continue;
    const o = s.ttlOffsets[i]!;
    ttl = ((msg[o]! << 24) >>> 0) + ((msg[o + 1]! << 16) | (msg[o + 2]! << 8) | msg[o + 3]!);
  }
  return ttl;
}

/** What synthesis needs of the client's query. */
export interface Dns64Query {
  id: number;
  flags: number;
  qtype: number;
  qclass: number;
  name(): string;
}

/** RFC 6147 §5.1.7: without a SOA in the AAAA response, the TTL bound is 600 s. */
export const DNS64_DEFAULT_SOA_TTL = 600;

/**
 * The DNS64 response to `q` from the A response aResp[0..len) (CoreDNS dns64 Synthesize):
 *  - header: the query's ID, QR, opcode, RD and CD; TC and RA as the A response had them;
 *    rcode NOERROR;
 *  - the query's question;
 *  - answer: each A record becomes an AAAA record under `prefix` with TTL min(A TTL, soaTtl)
 *    (§5.1.7); other records (the CNAME chain) are kept unchanged (§5.3.3);
 *  - authority and additional (with the OPT) of the A response unchanged (§5.3.2), the OPT's
 *    extended rcode cleared.
 * `soaTtl` is the TTL of the AAAA response's SOA, or DNS64_DEFAULT_SOA_TTL. Throws WireError
 * when the A response does not decode.
 */
export function synthesizeDns64(q: Dns64Query, aResp: Uint8Array, len: number, prefix: Ipv6Prefix, soaTtl: number): Buffer {
  const a = decodeMessage(aResp, len);
  const answer: RR[] = [];
  for (const rr of a.answer) {
    if (rr.type !== QType.A || typeof rr.data !== 'string') {
      answer.push(rr);
      continue;
    }
    const v4 = ipv4Bytes(rr.data);
    if (v4 === null) {
      answer.push(rr);
      continue;
    }
    answer.push({ name: rr.name, type: QType.AAAA, class: rr.class, ttl: Math.min(rr.ttl, soaTtl), data: embedIPv4(prefix, v4) });
  }
  const out: Message = {
    id: q.id,
    flags: Flag.QR | (q.flags & (Flag.OPCODE_MASK | Flag.RD | Flag.CD)) | (a.flags & (Flag.TC | Flag.RA)),
    rcode: 0,
    question: [{ name: q.name(), type: q.qtype, class: q.qclass }],
    answer,
    authority: a.authority,
    additional: a.additional,
    edns: a.edns === null ? null : { ...a.edns, extRcode: 0 },
  };
  return encodeMessage(out);
}
