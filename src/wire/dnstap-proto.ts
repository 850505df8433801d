/**
 * Protocol Buffers encoding of the dnstap schema (dnstap.proto, proto2: messages `Dnstap` and
 * `Message`), written by hand: only the fields node-local-dns fills, no decoder, no I/O.
 *
 * Wire format used (protobuf encoding rules): every field is a key varint
 * `(field_number << 3) | wire_type` followed by its value; wire type 0 = varint (enums,
 * uint32, uint64), 2 = length-delimited (bytes, embedded messages), 5 = fixed32 (the
 * nanosecond fields). Field numbers, from dnstap.proto:
 *   Dnstap:  identity 1 (bytes), version 2 (bytes), extra 3 (bytes), message 14 (Message),
 *            type 15 (enum, MESSAGE = 1).
 *   Message: type 1, socket_family 2, socket_protocol 3, query_address 4, response_address 5,
 *            query_port 6, response_port 7, query_time_sec 8 (uint64), query_time_nsec 9
 *            (fixed32), query_message 10, response_time_sec 12, response_time_nsec 13
 *            (fixed32), response_message 14.
 * Sizes are computed first, so a payload is written into one exactly sized Buffer.
 */
import { Buffer } from 'node:buffer';

/** dnstap Message.Type values used here (dnstap.proto has 14). */
export const TapType = {
  CLIENT_QUERY: 5,
  CLIENT_RESPONSE: 6,
  FORWARDER_QUERY: 7,
  FORWARDER_RESPONSE: 8,
} as const;

export const SocketFamily = { INET: 1, INET6: 2 } as const;
export const SocketProtocol = { UDP: 1, TCP: 2 } as const;

/** Dnstap.Type MESSAGE. */
const DNSTAP_TYPE_MESSAGE = 1;

/** The per-tap fields of the outer `Dnstap` message. */
export interface TapHeader {
  identity: Uint8Array;
  version: Uint8Array;
  /** null: no `extra` field. */
  extra: Uint8Array | null;
}

/** One dnstap `Message`. Absent optional fields: null address/message, -1 port/time. */
export interface TapMessage {
  type: number;
  family: number;
  protocol: number;
  /** 4 bytes (INET) or 16 (INET6). */
  queryAddress: Uint8Array | null;
  queryPort: number;
  responseAddress: Uint8Array | null;
  responsePort: number;
  /** Milliseconds since the UNIX epoch (fraction allowed), or -1. */
  queryTimeMs: number;
  responseTimeMs: number;
  /** Wire-format DNS messages (only with `full`). */
  queryMessage: Uint8Array | null;
  responseMessage: Uint8Array | null;
}

export function emptyTapMessage(type: number): TapMessage {
  return {
    type,
    family: 0,
    protocol: 0,
    queryAddress: null,
    queryPort: -1,
    responseAddress: null,
    responsePort: -1,
    queryTimeMs: -1,
    responseTimeMs: -1,
    queryMessage: null,
    responseMessage: null,
  };
}

function varintSize(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

/** Writes a non-negative integer (< 2^53) as a varint at off; returns the new offset. */
function putVarint(buf: Buffer, off: number, v: number): number {
  while (v >= 128) {
    buf[off++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[off++] = v;
  return off;
}

function putFixed32(buf: Buffer, off: number, v: number): number {
  buf.writeUInt32LE(v >>> 0, off);
  return off + 4;
}

/** Size of a length-delimited field with a one-byte key (field numbers < 16). */
function bytesFieldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

function putBytesField(buf: Buffer, off: number, field: number, b: Uint8Array): number {
  buf[off++] = (field << 3) | 2;
  off = putVarint(buf, off, b.length);
  buf.set(b, off);
  return off + b.length;
}

function putVarintField(buf: Buffer, off: number, field: number, v: number): number {
  buf[off++] = field << 3;
  return putVarint(buf, off, v);
}

function secNsec(ms: number): [number, number] {
  const sec = Math.floor(ms / 1000);
  let nsec = Math.round((ms - sec * 1000) * 1e6);
  if (nsec > 999_999_999) nsec = 999_999_999;
  return [sec, nsec];
}

function messageSize(m: TapMessage): number {
  let n = 1 + varintSize(m.type);
  if (m.family > 0) n += 1 + varintSize(m.family);
  if (m.protocol > 0) n += 1 + varintSize(m.protocol);
  if (m.queryAddress !== null) n += bytesFieldSize(m.queryAddress.length);
  if (m.responseAddress !== null) n += bytesFieldSize(m.responseAddress.length);
  if (m.queryPort >= 0) n += 1 + varintSize(m.queryPort);
  if (m.responsePort >= 0) n += 1 + varintSize(m.responsePort);
  if (m.queryTimeMs >= 0) n += 1 + varintSize(Math.floor(m.queryTimeMs / 1000)) + 5;
  if (m.queryMessage !== null) n += bytesFieldSize(m.queryMessage.length);
  if (m.responseTimeMs >= 0) n += 1 + varintSize(Math.floor(m.responseTimeMs / 1000)) + 5;
  if (m.responseMessage !== null) n += bytesFieldSize(m.responseMessage.length);
  return n;
}

function putMessage(buf: Buffer, off: number, m: TapMessage): number {
  off = putVarintField(buf, off, 1, m.type);
  if (m.family > 0) off = putVarintField(buf, off, 2, m.family);
  if (m.protocol > 0) off = putVarintField(buf, off, 3, m.protocol);
  if (m.queryAddress !== null) off = putBytesField(buf, off, 4, m.queryAddress);
  if (m.responseAddress !== null) off = putBytesField(buf, off, 5, m.responseAddress);
  if (m.queryPort >= 0) off = putVarintField(buf, off, 6, m.queryPort);
  if (m.responsePort >= 0) off = putVarintField(buf, off, 7, m.responsePort);
  if (m.queryTimeMs >= 0) {
    const [s, ns] = secNsec(m.queryTimeMs);
    off = putVarintField(buf, off, 8, s);
    buf[off++] = (9 << 3) | 5;
    off = putFixed32(buf, off, ns);
  }
  if (m.queryMessage !== null) off = putBytesField(buf, off, 10, m.queryMessage);
  if (m.responseTimeMs >= 0) {
    const [s, ns] = secNsec(m.responseTimeMs);
    off = putVarintField(buf, off, 12, s);
    buf[off++] = (13 << 3) | 5;
    off = putFixed32(buf, off, ns);
  }
  if (m.responseMessage !== null) off = putBytesField(buf, off, 14, m.responseMessage);
  return off;
}

/**
 * Encodes one `Dnstap{type: MESSAGE, message: m}` payload. `reserve` bytes are left free at
 * the start of the returned buffer (a framing layer writes its length prefix there).
 */
export function encodeDnstap(h: TapHeader, m: TapMessage, reserve = 0): Buffer {
  const msize = messageSize(m);
  let size = reserve;
  if (h.identity.length > 0) size += bytesFieldSize(h.identity.length);
  if (h.version.length > 0) size += bytesFieldSize(h.version.length);
  if (h.extra !== null) size += bytesFieldSize(h.extra.length);
  size += bytesFieldSize(msize); // message = 14
  size += 2; // type = 15, MESSAGE
  const buf = Buffer.allocUnsafe(size);
  buf.fill(0, 0, reserve);
  let off = reserve;
  if (h.identity.length > 0) off = putBytesField(buf, off, 1, h.identity);
  if (h.version.length > 0) off = putBytesField(buf, off, 2, h.version);
  if (h.extra !== null) off = putBytesField(buf, off, 3, h.extra);
  buf[off++] = (14 << 3) | 2;
  off = putVarint(buf, off, msize);
  const end = putMessage(buf, off, m);
  if (end - off !== msize) throw new Error(`dnstap: message size ${end - off} != computed ${msize}`);
  off = end;
  buf[off++] = 15 << 3;
  buf[off++] = DNSTAP_TYPE_MESSAGE;
  if (off !== size) throw new Error(`dnstap: payload size ${off} != computed ${size}`);
  return buf;
}

/**
 * The address bytes dnstap stores for an IP literal and its SocketFamily: IPv4 (and
 * IPv4-mapped IPv6, `::ffff:a.b.c.d`) as 4 octets with INET, other IPv6 as 16 octets with
 * INET6 (a `%zone` suffix is ignored). Returns null for text that is not an IP address.
 */
export function ipToTapAddress(text: string): { bytes: Uint8Array; family: number } | null {
  const v4 = parseIPv4(text);
  if (v4 !== null) return { bytes: v4, family: SocketFamily.INET };
  const pct = text.indexOf('%');
  const v6 = parseIPv6(pct >= 0 ? text.slice(0, pct) : text);
  if (v6 === null) return null;
  let mapped = v6[10] === 0xff && v6[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (v6[i] !== 0) mapped = false;
  if (mapped) return { bytes: v6.slice(12), family: SocketFamily.INET };
  return { bytes: v6, family: SocketFamily.INET6 };
}

function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^[0-9]{1,3}$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    out[i] = v;
  }
  return out;
}

function parseIPv6(s: string): Uint8Array | null {
  if (s.length === 0 || s.length > 45) return null;
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return null;
  const head = dbl >= 0 ? s.slice(0, dbl) : s;
  const tail = dbl >= 0 ? s.slice(dbl + 2) : '';
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const words = part.split(':');
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      if (i === words.length - 1 && w.includes('.')) {
        const v4 = parseIPv4(w);
        if (v4 === null) return null;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(w)) return null;
      out.push(parseInt(w, 16));
    }
    return out;
  };
  const h = groups(head);
  const t = groups(tail);
  if (h === null || t === null) return null;
  if (dbl < 0 && h.length !== 8) return null;
  if (dbl >= 0 && h.length + t.length > 7) return null;
  const all = [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = all[i]! >>> 8;
    out[2 * i + 1] = all[i]! & 0xff;
  }
  return out;
}
