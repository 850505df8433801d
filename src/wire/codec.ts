import { Flag, Header, QClass, QType } from './codes.ts';
import { WireError, WireErrorCode } from './errors.ts';
import { Reader } from './reader.ts';
import { Writer } from './writer.ts';
import { nameToLabels } from './name.ts';
import { ipv4Bytes, ipv6Bytes } from './ip.ts';

export interface Question {
  name: string;
  type: number;
  class: number;
}

export interface MxData {
  preference: number;
  exchange: string;
}

export interface SrvData {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

export interface SoaData {
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

export type Rdata = string | MxData | SrvData | SoaData | string[] | Uint8Array;

export interface RR {
  name: string;
  type: number;
  class: number;
  ttl: number;
  data: Rdata;
}

export interface EdnsOption {
  code: number;
  data: Uint8Array;
}

export interface Edns {
  udpSize: number;
  extRcode: number;
  version: number;
  dnssecOk: boolean;
  options: EdnsOption[];
}

export interface Message {
  id: number;
  /** The 16-bit header flags word, opcode and the low 4 rcode bits included. */
  flags: number;
  /** Full rcode: the header's 4 bits plus the OPT's extended bits. */
  rcode: number;
  question: Question[];
  answer: RR[];
  authority: RR[];
  /** Additional records without the OPT (that is `edns`). */
  additional: RR[];
  edns: Edns | null;
}

/** Types this codec knows by name beyond codes.ts (for presentation). */
const RR_TYPES: Record<string, number> = {
  ...QType,
  MD: 3,
  MF: 4,
  MB: 7,
  MG: 8,
  MR: 9,
  NULL: 10,
  WKS: 11,
  MINFO: 14,
  RP: 17,
  AFSDB: 18,
  SIG: 24,
  KEY: 25,
  LOC: 29,
  KX: 36,
  CERT: 37,
  DNAME: 39,
  APL: 42,
  SSHFP: 44,
  IPSECKEY: 45,
  DHCID: 49,
  NSEC3PARAM: 51,
  TLSA: 52,
  SMIMEA: 53,
  CDS: 59,
  CDNSKEY: 60,
  OPENPGPKEY: 61,
  CSYNC: 62,
  ZONEMD: 63,
  SPF: 99,
  EUI48: 108,
  EUI64: 109,
  TKEY: 249,
  TSIG: 250,
  URI: 256,
};
const RR_TYPE_NAMES = new Map<number, string>();
for (const [k, v] of Object.entries(RR_TYPES)) if (!RR_TYPE_NAMES.has(v)) RR_TYPE_NAMES.set(v, k);
const DNAME = 39;
const CAA = QType.CAA;

/** Mnemonic of a type as miekg/dns prints it; `TYPE123` (RFC 3597 §5) when it has none. */
export function rrTypeName(type: number): string {
  return RR_TYPE_NAMES.get(type) ?? `TYPE${type}`;
}

/** Type number of a mnemonic or of the RFC 3597 `TYPE123` form (case-insensitive); -1 when unknown. */
export function rrTypeFromName(name: string): number {
  const up = name.toUpperCase();
  const v = RR_TYPES[up];
  if (v !== undefined) return v;
  const m = /^TYPE([0-9]{1,5})$/.exec(up);
  if (m !== null && Number(m[1]) <= 0xffff) return Number(m[1]);
  return -1;
}

const CLASS_NAMES = new Map<number, string>([
  [QClass.IN, 'IN'],
  [QClass.CH, 'CH'],
  [QClass.HS, 'HS'],
  [QClass.NONE, 'NONE'],
  [QClass.ANY, 'ANY'],
]);

/** Class mnemonic as miekg/dns prints it; `CLASS123` when it has none. */
export function rrClassName(cls: number): string {
  return CLASS_NAMES.get(cls) ?? `CLASS${cls}`;
}

function classFromName(name: string): number {
  const up = name.toUpperCase();
  if (up === 'IN') return QClass.IN;
  if (up === 'CH' || up === 'CHAOS') return QClass.CH;
  if (up === 'HS') return QClass.HS;
  if (up === 'NONE') return QClass.NONE;
  if (up === 'ANY') return QClass.ANY;
  const m = /^CLASS([0-9]{1,5})$/.exec(up);
  if (m !== null && Number(m[1]) <= 0xffff) return Number(m[1]);
  return -1;
}

// ---------------------------------------------------------------------------------------------
// Addresses

/** RFC 5952 text of 16 address bytes, IPv4-mapped as `::ffff:a.b.c.d` (miekg/dns's AAAA form). */
export function formatIPv6(b: Uint8Array): string {
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false;
  if (mapped) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestAt < 0) return w.map((x) => x.toString(16)).join(':');
  const head = w
    .slice(0, bestAt)
    .map((x) => x.toString(16))
    .join(':');
  const tail = w
    .slice(bestAt + bestLen)
    .map((x) => x.toString(16))
    .join(':');
  return `${head}::${tail}`;
}

// ---------------------------------------------------------------------------------------------
// Decoding

function badRdata(type: number, msg: string, at: number): WireError {
  return new WireError(WireErrorCode.BAD_RDATA, `${rrTypeName(type)} rdata: ${msg}`, at);
}

function bytesToBinaryString(b: Uint8Array): string {
  let s = '';
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** Decodes the RDATA at buf[start..end) of a record of `type`; names may point back into buf. */
function decodeRdata(buf: Uint8Array, type: number, start: number, end: number): Rdata {
  const r = new Reader(buf, start, end);
  let data: Rdata;
  switch (type) {
    case QType.A: {
      if (end - start !== 4) throw badRdata(type, `length ${end - start}, want 4`, start);
      data = `${buf[start]}.${buf[start + 1]}.${buf[start + 2]}.${buf[start + 3]}`;
      return data;
    }
    case QType.AAAA: {
      if (end - start !== 16) throw badRdata(type, `length ${end - start}, want 16`, start);
      return formatIPv6(buf.subarray(start, end));
    }
    case QType.NS:
    case QType.CNAME:
    case QType.PTR:
    case DNAME:
      data = r.name();
      break;
    case QType.MX:
      data = { preference: r.u16(), exchange: r.name() };
      break;
    case QType.SRV:
      data = { priority: r.u16(), weight: r.u16(), port: r.u16(), target: r.name() };
      break;
    case QType.SOA:
      data = { mname: r.name(), rname: r.name(), serial: r.u32(), refresh: r.u32(), retry: r.u32(), expire: r.u32(), minimum: r.u32() };
      break;
    case QType.TXT: {
      const strings: string[] = [];
      while (r.remaining > 0) strings.push(bytesToBinaryString(r.bytes(r.u8())));
      data = strings;
      break;
    }
    default:
      return new Uint8Array(buf.subarray(start, end));
  }
  if (r.pos !== end) throw badRdata(type, `${end - r.pos} bytes left over`, r.pos);
  return data;
}

function decodeOptions(buf: Uint8Array, start: number, end: number): EdnsOption[] {
  const r = new Reader(buf, start, end);
  const out: EdnsOption[] = [];
  while (r.remaining > 0) {
    const code = r.u16();
    const len = r.u16();
    out.push({ code, data: new Uint8Array(r.bytes(len)) });
  }
  return out;
}

/**
 * Decodes the message in buf[0..len). Throws WireError for a message cut short, a bad name
 * or pointer, RDATA that does not fit its type, or a second OPT. Bytes past the last record
 * are ignored (miekg/dns does the same).
 */
export function decodeMessage(buf: Uint8Array, len = buf.length): Message {
  const r = new Reader(buf, 0, len);
  if (len > buf.length) throw new WireError(WireErrorCode.TRUNCATED, `length ${len} beyond the buffer (${buf.length})`, buf.length);
  const id = r.u16();
  const flags = r.u16();
  const qd = r.u16();
  const an = r.u16();
  const ns = r.u16();
  const ar = r.u16();
  const m: Message = { id, flags, rcode: flags & Flag.RCODE_MASK, question: [], answer: [], authority: [], additional: [], edns: null };
  for (let i = 0; i < qd; i++) m.question.push({ name: r.name(), type: r.u16(), class: r.u16() });
  const total = an + ns + ar;
  for (let i = 0; i < total; i++) {
    const name = r.name();
    const type = r.u16();
    const cls = r.u16();
    const ttl = r.u32();
    const rdlen = r.u16();
    const start = r.pos;
    r.skip(rdlen);
    if (type === QType.OPT && i >= an + ns) {
      if (m.edns !== null) throw new WireError(WireErrorCode.BAD_RDATA, 'more than one OPT record', start);
      const extRcode = ttl >>> 24;
      m.edns = { udpSize: cls, extRcode, version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0, options: decodeOptions(buf, start, start + rdlen) };
      m.rcode |= extRcode << 4;
      continue;
    }
    const rr: RR = { name, type, class: cls, ttl, data: decodeRdata(buf, type, start, start + rdlen) };
    if (i < an) m.answer.push(rr);
    else if (i < an + ns) m.authority.push(rr);
    else m.additional.push(rr);
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function isRaw(d: Rdata): d is Uint8Array {
  return d instanceof Uint8Array;
}

function wrongData(rr: RR): Error {
  return new TypeError(`${rrTypeName(rr.type)} record ${rr.name}: rdata of the wrong shape`);
}

function writeCharString(w: Writer, s: string, rr: RR): void {
  if (s.length > 255) throw new RangeError(`${rrTypeName(rr.type)} record ${rr.name}: character-string longer than 255 bytes`);
  w.u8(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`${rrTypeName(rr.type)} record ${rr.name}: character-string char above 0xff (strings hold bytes)`);
    w.u8(c);
  }
}

function writeRdata(w: Writer, rr: RR): void {
  const d = rr.data;
  if (isRaw(d)) {
    w.bytes(d);
    return;
  }
  switch (rr.type) {
    case QType.A: {
      const b = typeof d === 'string' ? ipv4Bytes(d) : null;
      if (b === null) throw new TypeError(`A record ${rr.name}: not an IPv4 address: ${String(d)}`);
      w.bytes(b);
      return;
    }
    case QType.AAAA: {
      const b = typeof d === 'string' ? ipv6Bytes(d) : null;
      if (b === null) throw new TypeError(`AAAA record ${rr.name}: not an IPv6 address: ${String(d)}`);
      w.bytes(b);
      return;
    }
    case QType.NS:
    case QType.CNAME:
    case QType.PTR:
      if (typeof d !== 'string') throw wrongData(rr);
      w.name(d, true);
      return;
    case DNAME:
      // RFC 6672 §2.5 / RFC 3597 §4: not compressed.
      if (typeof d !== 'string') throw wrongData(rr);
      w.name(d, false);
      return;
    case QType.MX: {
      const mx = d as MxData;
      if (typeof mx !== 'object' || typeof mx.exchange !== 'string') throw wrongData(rr);
      w.u16(mx.preference);
      w.name(mx.exchange, true);
      return;
    }
    case QType.SRV: {
      const srv = d as SrvData;
      if (typeof srv !== 'object' || typeof srv.target !== 'string') throw wrongData(rr);
      // RFC 2782: the target is not compressed.
      w.u16(srv.priority).u16(srv.weight).u16(srv.port);
      w.name(srv.target, false);
      return;
    }
    case QType.SOA: {
      const soa = d as SoaData;
      if (typeof soa !== 'object' || typeof soa.mname !== 'string' || typeof soa.rname !== 'string') throw wrongData(rr);
      w.name(soa.mname, true);
      w.name(soa.rname, true);
      w.u32(soa.serial).u32(soa.refresh).u32(soa.retry).u32(soa.expire).u32(soa.minimum);
      return;
    }
    case QType.TXT:
      if (!Array.isArray(d)) throw wrongData(rr);
      for (const s of d) writeCharString(w, s, rr);
      return;
    default:
      throw new TypeError(`${rrTypeName(rr.type)} record ${rr.name}: rdata must be raw bytes (Uint8Array)`);
  }
}

function writeRR(w: Writer, rr: RR): void {
  w.name(rr.name, true);
  w.u16(rr.type).u16(rr.class).u32(rr.ttl);
  const lenAt = w.pos;
  w.u16(0);
  writeRdata(w, rr);
  const rdlen = w.pos - lenAt - 2;
  if (rdlen > 0xffff) throw new WireError(WireErrorCode.TOO_LARGE, `rdata of ${rr.name} longer than 65535 bytes`);
  w.patchU16(lenAt, rdlen);
}

function optSize(e: Edns): number {
  let n = 11;
  for (const o of e.options) n += 4 + o.data.length;
  return n;
}

export interface EncodeOptions {
  /**
   * Largest message wanted (a client's UDP payload size). Records that do not fit are left out
   * whole, in message order from the first one that does not fit (as miekg/dns's Truncate), and
   * TC is set; the OPT record is always kept. Without it the limit is 65535 and exceeding it throws.
   */
  maxSize?: number;
}

/**
 * Encodes a message with name compression. The header's rcode bits come from `m.rcode`
 * (its bits above 4 go to the OPT, which is written when `m.edns` is set, or when the rcode
 * needs one). TC is kept when set in `m.flags`.
 */
export function encodeMessage(m: Message, opts: EncodeOptions = {}): Buffer {
  const w = new Writer(512, false);
  let edns = m.edns;
  if (edns === null && m.rcode > 15) edns = { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: false, options: [] };
  let flags = (m.flags & ~Flag.RCODE_MASK & 0xffff) | (m.rcode & Flag.RCODE_MASK);
  w.u16(m.id).u16(flags).u16(m.question.length).u16(0).u16(0).u16(0);
  for (const q of m.question) {
    w.name(q.name, true);
    w.u16(q.type).u16(q.class);
  }
  const budget = (opts.maxSize ?? 0xffff) - (edns !== null ? optSize(edns) : 0);
  const sections = [m.answer, m.authority, m.additional];
  const counts = [0, 0, 0];
  let cut = false;
  for (let s = 0; s < 3 && !cut; s++) {
    for (const rr of sections[s]!) {
      const start = w.pos;
      if (opts.maxSize === undefined) {
        writeRR(w, rr);
      } else {
        try {
          writeRR(w, rr);
        } catch (err) {
          if (!(err instanceof WireError && err.code === WireErrorCode.TOO_LARGE)) throw err;
          w.rollback(start);
          cut = true;
          break;
        }
        if (w.pos > budget) {
          w.rollback(start);
          cut = true;
          break;
        }
      }
      counts[s]!++;
    }
  }
  if (edns !== null) {
    const ext = m.rcode > 15 ? m.rcode >>> 4 : edns.extRcode;
    w.u8(0).u16(QType.OPT).u16(edns.udpSize);
    w.u8(ext)
      .u8(edns.version)
      .u16(edns.dnssecOk ? 0x8000 : 0);
    const lenAt = w.pos;
    w.u16(0);
    for (const o of edns.options) w.u16(o.code).u16(o.data.length).bytes(o.data);
    w.patchU16(lenAt, w.pos - lenAt - 2);
  }
  if (cut) flags |= Flag.TC;
  w.patchU16(Header.FLAGS, flags);
  w.patchU16(Header.ANCOUNT, counts[0]!);
  w.patchU16(Header.NSCOUNT, counts[1]!);
  w.patchU16(Header.ARCOUNT, counts[2]! + (edns !== null ? 1 : 0));
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Presentation (zone-file) form

/** Escapes label bytes as name.ts does for names. */
function labelText(l: Uint8Array): string {
  let s = '';
  for (const c of l) {
    if (c === 0x2e || c === 0x5c) s += '\\' + String.fromCharCode(c);
    else if (c > 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\' + c.toString().padStart(3, '0');
  }
  return s;
}

/** A presentation name, canonically escaped, made absolute against `origin`. */
function absName(text: string, origin: string): string {
  if (text === '@') text = origin;
  else if (!text.endsWith('.') || (text.endsWith('\\.') && !text.endsWith('\\\\.'))) {
    text = origin === '.' ? `${text}.` : `${text}.${origin}`;
  }
  const labels = nameToLabels(text);
  return labels.length === 0 ? '.' : labels.map(labelText).join('.') + '.';
}

interface Tok {
  text: string;
  quoted: boolean;
}

function tokenize(line: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < line.length) {
    const c = line[i]!;
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '(' || c === ')') {
      i++;
      continue;
    }
    if (c === ';') {
      while (i < line.length && line[i] !== '\n') i++;
      continue;
    }
    if (c === '"') {
      let s = '';
      i++;
      for (;;) {
        if (i >= line.length) throw new Error(`unterminated quoted string in ${JSON.stringify(line)}`);
        const d = line[i]!;
        if (d === '\\' && i + 1 < line.length) {
          s += d + line[i + 1]!;
          i += 2;
          continue;
        }
        if (d === '"') {
          i++;
          break;
        }
        s += d;
        i++;
      }
      out.push({ text: s, quoted: true });
      continue;
    }
    let s = '';
    while (i < line.length) {
      const d = line[i]!;
      if (d === ' ' || d === '\t' || d === '\n' || d === '\r' || d === '(' || d === ')' || d === ';' || d === '"') break;
      if (d === '\\' && i + 1 < line.length) {
        s += d + line[i + 1]!;
        i += 2;
        continue;
      }
      s += d;
      i++;
    }
    out.push({ text: s, quoted: false });
  }
  return out;
}

/** Decodes a character-string's escapes (`\DDD`, `\X`) into a binary string; UTF-8 for non-ASCII. */
function unescapeCharString(text: string): string {
  let s = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\') {
      const d = text.slice(i + 1, i + 4);
      if (/^[0-9]{3}$/.test(d)) {
        const v = Number(d);
        if (v > 255) throw new Error(`bad escape \\${d}`);
        s += String.fromCharCode(v);
        i += 3;
      } else if (i + 1 < text.length) {
        s += text[i + 1]!;
        i++;
      } else {
        throw new Error('dangling backslash');
      }
      continue;
    }
    const code = c.charCodeAt(0);
    if (code > 0x7f) s += bytesToBinaryString(Buffer.from(c, 'utf8'));
    else s += c;
  }
  return s;
}

/** TTL words: seconds, or BIND's unit form (`1h30m`, `2d`). */
function parseTtl(text: string): number | null {
  let v: number;
  if (/^[0-9]+$/.test(text)) v = Number(text);
  else if (/^([0-9]+[smhdwSMHDW])+$/.test(text)) {
    const mult: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
    v = 0;
    for (const [, n, u] of text.matchAll(/([0-9]+)([smhdwSMHDW])/g)) v += Number(n) * mult[u!.toLowerCase()]!;
  } else return null;
  return v <= 0xffffffff ? v : null;
}

function uint(text: string | undefined, max: number, what: string): number {
  if (text === undefined || !/^[0-9]+$/.test(text) || Number(text) > max) throw new Error(`bad ${what}: ${JSON.stringify(text ?? '')}`);
  return Number(text);
}

export interface ParseRROptions {
  /** Origin for relative names and `@`; `.` by default. */
  origin?: string;
  /** TTL when the record gives none; 3600 by default. */
  defaultTtl?: number;
}

/**
 * One resource record in zone-file presentation form: `owner [ttl] [class] type rdata`, TTL
 * and class in either order, comments and parentheses allowed. RDATA for A, AAAA, NS, CNAME,
 * PTR, DNAME, MX, SRV, SOA, TXT (quoted or bare strings, several, `\DDD`/`\X` escapes) and CAA,
 * and RFC 3597's `\# length hex` for any type (typed types get their typed data back). Type
 * names include `TYPE123`. Throws an Error saying what is wrong.
 */
export function parseRR(text: string, opts: ParseRROptions = {}): RR {
  try {
    return parseRRTokens(tokenize(text), opts);
  } catch (err) {
    throw new Error(`cannot parse record ${JSON.stringify(text.trim())}: ${(err as Error).message}`);
  }
}

function parseRRTokens(t: Tok[], opts: ParseRROptions): RR {
  const origin = opts.origin === undefined ? '.' : absName(opts.origin, '.');
  if (t.length < 2) throw new Error('too few fields');
  const name = absName(t[0]!.text, origin);
  let i = 1;
  let ttl: number | null = null;
  let cls = -1;
  let type = -1;
  while (i < t.length && type < 0) {
    const w = t[i++]!.text;
    const asTtl: number | null = ttl === null ? parseTtl(w) : null;
    if (asTtl !== null) {
      ttl = asTtl;
      continue;
    }
    const asClass = cls < 0 ? classFromName(w) : -1;
    if (asClass >= 0) {
      cls = asClass;
      continue;
    }
    type = rrTypeFromName(w);
    if (type < 0) throw new Error(`unknown type or bad TTL/class ${JSON.stringify(w)}`);
  }
  if (type < 0) throw new Error('no type');
  if (type === QType.OPT) throw new Error('OPT is not a zone-file record');
  const rr: RR = { name, type, class: cls < 0 ? QClass.IN : cls, ttl: ttl ?? opts.defaultTtl ?? 3600, data: '' };
  const rd = t.slice(i);
  if (rd.length > 0 && !rd[0]!.quoted && rd[0]!.text === '\\#') {
    rr.data = parseGeneric(type, rd.slice(1));
    return rr;
  }
  rr.data = parseTypedRdata(type, rd, origin);
  return rr;
}

function parseGeneric(type: number, rd: Tok[]): Rdata {
  const len = uint(rd[0]?.text, 0xffff, 'RFC 3597 rdata length');
  const hex = rd
    .slice(1)
    .map((x) => x.text)
    .join('');
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error('RFC 3597 rdata is not hex');
  const bytes = new Uint8Array(Buffer.from(hex, 'hex'));
  if (bytes.length !== len) throw new Error(`RFC 3597 rdata length ${len} but ${bytes.length} bytes given`);
  // Typed types get their typed form back (no compression pointers can be in it).
  return decodeRdata(bytes, type, 0, bytes.length);
}

function parseTypedRdata(type: number, rd: Tok[], origin: string): Rdata {
  const need = (n: number): void => {
    if (rd.length !== n) throw new Error(`${rrTypeName(type)} needs ${n} rdata field(s), got ${rd.length}`);
  };
  switch (type) {
    case QType.A: {
      need(1);
      if (ipv4Bytes(rd[0]!.text) === null) throw new Error(`bad A address ${JSON.stringify(rd[0]!.text)}`);
      return rd[0]!.text;
    }
    case QType.AAAA: {
      need(1);
      const b = ipv6Bytes(rd[0]!.text);
      if (b === null) throw new Error(`bad AAAA address ${JSON.stringify(rd[0]!.text)}`);
      return formatIPv6(b);
    }
    case QType.NS:
    case QType.CNAME:
    case QType.PTR:
    case DNAME:
      need(1);
      return absName(rd[0]!.text, origin);
    case QType.MX:
      need(2);
      return { preference: uint(rd[0]!.text, 0xffff, 'MX preference'), exchange: absName(rd[1]!.text, origin) };
    case QType.SRV:
      need(4);
      return {
        priority: uint(rd[0]!.text, 0xffff, 'SRV priority'),
        weight: uint(rd[1]!.text, 0xffff, 'SRV weight'),
        port: uint(rd[2]!.text, 0xffff, 'SRV port'),
        target: absName(rd[3]!.text, origin),
      };
    case QType.SOA: {
      need(7);
      const timer = (x: Tok, what: string): number => {
        const v = parseTtl(x.text);
        if (v === null) throw new Error(`bad SOA ${what} ${JSON.stringify(x.text)}`);
        return v;
      };
      return {
        mname: absName(rd[0]!.text, origin),
        rname: absName(rd[1]!.text, origin),
        serial: uint(rd[2]!.text, 0xffffffff, 'SOA serial'),
        refresh: timer(rd[3]!, 'refresh'),
        retry: timer(rd[4]!, 'retry'),
        expire: timer(rd[5]!, 'expire'),
        minimum: timer(rd[6]!, 'minimum'),
      };
    }
    case QType.TXT: {
      if (rd.length === 0) throw new Error('TXT needs at least one string');
      return rd.map((x) => {
        const s = unescapeCharString(x.text);
        if (s.length > 255) throw new Error('TXT string longer than 255 bytes');
        return s;
      });
    }
    case CAA: {
      need(3);
      const flags = uint(rd[0]!.text, 255, 'CAA flags');
      const tag = rd[1]!.text;
      if (!/^[A-Za-z0-9]{1,255}$/.test(tag)) throw new Error(`bad CAA tag ${JSON.stringify(tag)}`);
      const value = unescapeCharString(rd[2]!.text);
      const out = new Uint8Array(2 + tag.length + value.length);
      out[0] = flags;
      out[1] = tag.length;
      for (let k = 0; k < tag.length; k++) out[2 + k] = tag.charCodeAt(k);
      for (let k = 0; k < value.length; k++) out[2 + tag.length + k] = value.charCodeAt(k);
      return out;
    }
    default:
      throw new Error(`${rrTypeName(type)} rdata is only understood in the RFC 3597 form: \\# <length> <hex>`);
  }
}

/** A character-string quoted as miekg/dns prints TXT: `"` and `\` escaped, other non-printables as `\DDD`. */
function quoteCharString(s: string | Uint8Array): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = typeof s === 'string' ? s.charCodeAt(i) : s[i]!;
    if (c === 0x22 || c === 0x5c) out += '\\' + String.fromCharCode(c);
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += '\\' + (c & 0xff).toString().padStart(3, '0');
  }
  return out + '"';
}

function formatGeneric(b: Uint8Array): string {
  return b.length === 0 ? '\\# 0' : `\\# ${b.length} ${Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex')}`;
}

/** The RDATA of rr in presentation form. */
export function formatRdata(rr: RR): string {
  const d = rr.data;
  if (isRaw(d)) {
    if (rr.type === CAA && d.length >= 2 && 2 + d[1]! <= d.length) {
      const tag = bytesToBinaryString(d.subarray(2, 2 + d[1]!));
      if (/^[A-Za-z0-9]+$/.test(tag)) return `${d[0]} ${tag} ${quoteCharString(d.subarray(2 + d[1]!))}`;
    }
    return formatGeneric(d);
  }
  if (typeof d === 'string') return d;
  if (Array.isArray(d)) return d.map(quoteCharString).join(' ');
  if ('exchange' in d) return `${d.preference} ${d.exchange}`;
  if ('target' in d) return `${d.priority} ${d.weight} ${d.port} ${d.target}`;
  return `${d.mname} ${d.rname} ${d.serial} ${d.refresh} ${d.retry} ${d.expire} ${d.minimum}`;
}

/** A record as dig and miekg/dns print it: name TAB ttl TAB class TAB type TAB rdata. */
export function formatRR(rr: RR): string {
  return `${rr.name}\t${rr.ttl}\t${rrClassName(rr.class)}\t${rrTypeName(rr.type)}\t${formatRdata(rr)}`;
}

// ---------------------------------------------------------------------------------------------
// Replies

/** What replyTo needs of a query (a server/request.ts Request satisfies it). */
export interface QueryView {
  id: number;
  flags: number;
  qtype: number;
  qclass: number;
  name(): string;
  edns: boolean;
  udpSize: number;
  dnssecOk: boolean;
}

/**
 * A response skeleton for a query, as miekg/dns's SetReply makes it: the query's ID and
 * question, QR set, opcode, RD and CD copied (RA, AA clear: callers set them), rcode NOERROR,
 * no records, and an OPT mirroring the query's (its payload size and DO bit) when it had one.
 * Fields of `m` replace the skeleton's.
 */
export function replyTo(req: QueryView, m: Partial<Message> = {}): Message {
  const base: Message = {
    id: req.id,
    flags: Flag.QR | (req.flags & (Flag.OPCODE_MASK | Flag.RD | Flag.CD)),
    rcode: 0,
    question: [{ name: req.name(), type: req.qtype, class: req.qclass }],
    answer: [],
    authority: [],
    additional: [],
    edns: req.edns ? { udpSize: req.udpSize, extRcode: 0, version: 0, dnssecOk: req.dnssecOk, options: [] } : null,
  };
  return { ...base, ...m };
}
