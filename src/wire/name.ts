/**
 * Domain names on the wire (RFC 1035 §3.1, §4.1.4) and as presentation text.
 * Text form: labels separated by dots, fully qualified (trailing dot), `.` for the root;
 * a dot or backslash inside a label is escaped as `\.`/`\\`, other bytes outside 0x21..0x7e as `\DDD`.
 */
import { Limits } from './codes.ts';
import { WireError, WireErrorCode } from './errors.ts';

const POINTER_MASK = 0xc0;

/** ASCII lower-casing of one byte (RFC 4343: names compare case-insensitively, ASCII only). */
export function lowerByte(b: number): number {
  return b >= 0x41 && b <= 0x5a ? b | 0x20 : b;
}

function appendLabelText(out: string[], buf: Uint8Array, start: number, len: number): void {
  let s = '';
  for (let i = start; i < start + len; i++) {
    const c = buf[i]!;
    if (c === 0x2e || c === 0x5c) s += '\\' + String.fromCharCode(c);
    else if (c > 0x20 && c < 0x7f) s += String.fromCharCode(c);
    else s += '\\' + c.toString().padStart(3, '0');
  }
  out.push(s);
}

/**
 * Text of an uncompressed name stored at buf[start..end) (e.g. a query's qname).
 * The caller has validated the labels (parseQuery did); bytes are not re-checked beyond bounds.
 */
export function qnameToString(buf: Uint8Array, start: number, end: number): string {
  const labels: string[] = [];
  let pos = start;
  while (pos < end) {
    const len = buf[pos]!;
    if (len === 0) break;
    if (pos + 1 + len > end) break;
    appendLabelText(labels, buf, pos + 1, len);
    pos += 1 + len;
  }
  return labels.length === 0 ? '.' : labels.join('.') + '.';
}

/**
 * Reads a possibly compressed name at `offset` of buf[0..len).
 * Compression pointers must point strictly before every position already visited in this
 * name (so they only go backward and cannot loop); the expanded name is at most 255 bytes.
 * Returns the name text and the offset just past the name's bytes at `offset`.
 */
export function readName(buf: Uint8Array, offset: number, len: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  let lowest = offset;
  let wireLen = 1;
  for (;;) {
    if (pos >= len) throw new WireError(WireErrorCode.TRUNCATED, 'name runs past the message', pos);
    const b = buf[pos]!;
    if (b === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    const kind = b & POINTER_MASK;
    if (kind === POINTER_MASK) {
      if (pos + 1 >= len) throw new WireError(WireErrorCode.TRUNCATED, 'pointer runs past the message', pos);
      const target = ((b & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= lowest) throw new WireError(WireErrorCode.BAD_POINTER, 'compression pointer does not point backward', pos);
      if (next < 0) next = pos + 2;
      lowest = target;
      pos = target;
      continue;
    }
    if (kind !== 0) throw new WireError(WireErrorCode.BAD_LABEL, 'reserved label type', pos);
    wireLen += b + 1;
    if (wireLen > Limits.MAX_NAME_WIRE) throw new WireError(WireErrorCode.NAME_TOO_LONG, 'name longer than 255 bytes', pos);
    if (pos + 1 + b > len) throw new WireError(WireErrorCode.TRUNCATED, 'label runs past the message', pos);
    appendLabelText(labels, buf, pos + 1, b);
    pos += 1 + b;
  }
  return { name: labels.length === 0 ? '.' : labels.join('.') + '.', next };
}

/**
 * Offset just past a possibly compressed name at `offset`, validating it as readName does
 * but building nothing. Returns -1 when the name is malformed (no exception on hot paths).
 */
export function skipName(buf: Uint8Array, offset: number, len: number): number {
  let pos = offset;
  let next = -1;
  let lowest = offset;
  let wireLen = 1;
  for (;;) {
    if (pos >= len) return -1;
    const b = buf[pos]!;
    if (b === 0) return next < 0 ? pos + 1 : next;
    if ((b & POINTER_MASK) === POINTER_MASK) {
      if (pos + 1 >= len) return -1;
      const target = ((b & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= lowest) return -1;
      if (next < 0) next = pos + 2;
      lowest = target;
      pos = target;
      continue;
    }
    if ((b & POINTER_MASK) !== 0) return -1;
    wireLen += b + 1;
    if (wireLen > Limits.MAX_NAME_WIRE || pos + 1 + b > len) return -1;
    pos += 1 + b;
  }
}

/** Splits presentation text into raw label bytes, honouring `\.`, `\\` and `\DDD` escapes. */
export function nameToLabels(name: string): Uint8Array[] {
  if (name === '.' || name === '') return [];
  const labels: Uint8Array[] = [];
  let cur: number[] = [];
  let i = 0;
  const text = name;
  while (i < text.length) {
    const ch = text.charCodeAt(i);
    if (ch === 0x2e) {
      if (cur.length === 0) throw new WireError(WireErrorCode.BAD_NAME_TEXT, `empty label in ${JSON.stringify(name)}`);
      labels.push(Uint8Array.from(cur));
      cur = [];
      i++;
      continue;
    }
    if (ch === 0x5c) {
      const d = text.slice(i + 1, i + 4);
      if (/^[0-9]{3}$/.test(d)) {
        const v = Number(d);
        if (v > 255) throw new WireError(WireErrorCode.BAD_NAME_TEXT, `bad escape in ${JSON.stringify(name)}`);
        cur.push(v);
        i += 4;
        continue;
      }
      if (i + 1 >= text.length) throw new WireError(WireErrorCode.BAD_NAME_TEXT, `dangling escape in ${JSON.stringify(name)}`);
      cur.push(text.charCodeAt(i + 1) & 0xff);
      i += 2;
      continue;
    }
    if (ch > 0x7f) throw new WireError(WireErrorCode.BAD_NAME_TEXT, `non-ASCII character in ${JSON.stringify(name)}`);
    cur.push(ch);
    i++;
  }
  if (cur.length > 0) labels.push(Uint8Array.from(cur));
  let wire = 1;
  for (const l of labels) {
    if (l.length > Limits.MAX_LABEL) throw new WireError(WireErrorCode.BAD_LABEL, `label longer than 63 bytes in ${JSON.stringify(name)}`);
    wire += l.length + 1;
  }
  if (wire > Limits.MAX_NAME_WIRE) throw new WireError(WireErrorCode.NAME_TOO_LONG, `name longer than 255 bytes: ${JSON.stringify(name)}`);
  return labels;
}

/** Uncompressed wire form of a presentation-format name. */
export function encodeName(name: string): Buffer {
  const labels = nameToLabels(name);
  let size = 1;
  for (const l of labels) size += l.length + 1;
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const l of labels) {
    out[pos++] = l.length;
    out.set(l, pos);
    pos += l.length;
  }
  out[pos] = 0;
  return out;
}

/** Case-insensitive comparison of `len` bytes of two buffers (for uncompressed names). */
export function equalBytesCI(a: Uint8Array, aStart: number, b: Uint8Array, bStart: number, len: number): boolean {
  for (let i = 0; i < len; i++) {
    const x = a[aStart + i]!;
    const y = b[bStart + i]!;
    if (x !== y && lowerByte(x) !== lowerByte(y)) return false;
  }
  return true;
}

/** Canonical text form used for zones and keys: lower case, fully qualified. */
export function canonicalName(name: string): string {
  let n = name.toLowerCase();
  if (!n.endsWith('.')) n += '.';
  if (n === '..') n = '.';
  return n;
}
