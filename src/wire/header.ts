/**
 * Named accessors for the fixed 12-byte DNS header (RFC 1035 §4.1.1) and big-endian fields.
 * Code outside src/wire/ reads and writes header fields through these, never by offset
 * (test/structure/wire-only.test.ts checks it). Callers guarantee len >= Header.SIZE
 * unless a function says otherwise.
 */
import { Flag, Header } from './codes.ts';

/** Big-endian 16-bit value at b[p..p+2). */
export function u16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

/** Big-endian unsigned 32-bit value at b[p..p+4). */
export function u32(b: Uint8Array, p: number): number {
  return ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
}

/** Writes v (0..2^32-1) big-endian at b[p..p+4) (a TTL). */
export function setU32(b: Uint8Array, p: number, v: number): void {
  b[p] = (v >>> 24) & 0xff;
  b[p + 1] = (v >>> 16) & 0xff;
  b[p + 2] = (v >>> 8) & 0xff;
  b[p + 3] = v & 0xff;
}

/** Writes v (0..65535) big-endian at b[p..p+2). */
export function setU16(b: Uint8Array, p: number, v: number): void {
  b[p] = (v >>> 8) & 0xff;
  b[p + 1] = v & 0xff;
}

export function messageId(b: Uint8Array): number {
  return u16(b, Header.ID);
}

export function setMessageId(b: Uint8Array, id: number): void {
  setU16(b, Header.ID, id);
}

/** The 16-bit flags word (QR, opcode, AA, TC, RD, RA, Z, AD, CD, rcode) of the message at b[at..]. */
export function messageFlags(b: Uint8Array, at = 0): number {
  return u16(b, at + Header.FLAGS);
}

export function setMessageFlags(b: Uint8Array, flags: number): void {
  setU16(b, Header.FLAGS, flags);
}

/** The header's 4-bit rcode (the OPT's extended bits are not included: see scanResponse). */
export function headerRcode(b: Uint8Array): number {
  return b[Header.FLAGS + 1]! & Flag.RCODE_MASK;
}

/** The header rcode of msg[0..len), or SERVFAIL for a message too short to hold one. */
export function replyRcode(b: Uint8Array, len: number): number {
  return len >= Header.FLAGS + 2 ? headerRcode(b) : 2;
}

/** Sets the header's 4-bit rcode, keeping the other flags. */
export function setHeaderRcode(b: Uint8Array, rcode: number): void {
  const p = Header.FLAGS + 1;
  b[p] = (b[p]! & ~Flag.RCODE_MASK & 0xff) | (rcode & Flag.RCODE_MASK);
}

/** QR set: the message is a response. */
export function isResponse(b: Uint8Array): boolean {
  return (b[Header.FLAGS]! & (Flag.QR >>> 8)) !== 0;
}

/** TC set: the message was truncated. */
export function isTruncated(b: Uint8Array): boolean {
  return (b[Header.FLAGS]! & (Flag.TC >>> 8)) !== 0;
}

/** Clears the given flag bits (Flag.*) of the header. */
export function clearFlags(b: Uint8Array, mask: number): void {
  setMessageFlags(b, messageFlags(b) & ~mask);
}

export function questionCount(b: Uint8Array): number {
  return u16(b, Header.QDCOUNT);
}

export function answerCount(b: Uint8Array): number {
  return u16(b, Header.ANCOUNT);
}

export function authorityCount(b: Uint8Array): number {
  return u16(b, Header.NSCOUNT);
}

export function additionalCount(b: Uint8Array): number {
  return u16(b, Header.ARCOUNT);
}

/** Sets QDCOUNT, ANCOUNT, NSCOUNT and ARCOUNT. */
export function setCounts(b: Uint8Array, qd: number, an: number, ns: number, ar: number): void {
  setU16(b, Header.QDCOUNT, qd);
  setU16(b, Header.ANCOUNT, an);
  setU16(b, Header.NSCOUNT, ns);
  setU16(b, Header.ARCOUNT, ar);
}

/** Sets ARCOUNT of the message at b[at..]. */
export function setAdditionalCount(b: Uint8Array, ar: number, at = 0): void {
  setU16(b, at + Header.ARCOUNT, ar);
}

/** A message of at least a header whose ID is `id` and whose QR bit is set. */
export function isResponseTo(b: Uint8Array, len: number, id: number): boolean {
  return len >= Header.SIZE && messageId(b) === id && isResponse(b);
}
