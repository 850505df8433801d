/**
 * IP address text to address bytes, for the record data, options and prefixes the wire code
 * writes. Node's isIPv4/isIPv6 validate first; an IPv6 zone (`%eth0`) is refused (callers that
 * accept one strip it). null when the text is not an address of that family. And the way back
 * for IPv6: eight 16-bit groups to RFC 5952 text (ipv6GroupsText).
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The 4 bytes of a dotted-quad IPv4 address, or null. */
export function ipv4Bytes(text: string): Uint8Array | null {
  if (!isIPv4(text)) return null;
  return Uint8Array.from(text.split('.').map(Number));
}

/** The 16 bytes of an IPv6 address (`::` and a trailing dotted quad allowed), or null. */
export function ipv6Bytes(text: string): Uint8Array | null {
  if (!isIPv6(text) || text.includes('%')) return null;
  let s = text;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    // A trailing dotted quad (`::ffff:1.2.3.4`) becomes two hex groups.
    const v4 = ipv4Bytes(s.slice(lastColon + 1));
    if (v4 === null) return null;
    s = `${s.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  let words: number[];
  const dbl = s.indexOf('::');
  if (dbl >= 0) {
    const head = groups(s.slice(0, dbl));
    const rest = groups(s.slice(dbl + 2));
    const fill = 8 - head.length - rest.length;
    if (fill < 1) return null;
    words = [...head, ...new Array<number>(fill).fill(0), ...rest];
  } else {
    words = groups(s);
  }
  if (words.length !== 8 || words.some((w) => !(w >= 0 && w <= 0xffff))) return null;
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i]! >>> 8;
    out[2 * i + 1] = words[i]! & 0xff;
  }
  return out;
}

/** The bytes of an IPv4 (4) or IPv6 (16) address, or null. */
export function ipBytes(text: string): Uint8Array | null {
  return ipv4Bytes(text) ?? ipv6Bytes(text);
}

/**
 * RFC 5952 text of an IPv6 address given as its eight 16-bit groups: lower-case hex without
 * leading zeros, the first longest run of two or more zero groups written `::`. (What an
 * IPv4-mapped address becomes is the caller's choice: Go prints its dotted quad, a socket's
 * peer text `::ffff:a.b.c.d`.)
 */
export function ipv6GroupsText(groups: ArrayLike<number>): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number): string => {
    let out = '';
    for (let i = from; i < to; i++) out += (i > from ? ':' : '') + (groups[i] ?? 0).toString(16);
    return out;
  };
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}
