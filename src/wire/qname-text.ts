/**
 * The lower-cased presentation text of a query's uncompressed qname, built as one flat string
 * (matching code compares it at once; a string concatenated label by label and lower-cased
 * afterwards costs several times more). Same escapes as name.ts's qnameToString: `\.`, `\\`
 * inside a label, `\DDD` outside 0x21..0x7e; fully qualified, `.` for the root.
 */
const scratch: number[] = [];

export function qnameLowerText(buf: Uint8Array, start: number, end: number): string {
  const out = scratch;
  out.length = 0;
  let pos = start;
  while (pos < end) {
    const len = buf[pos]!;
    if (len === 0 || pos + 1 + len > end) break;
    for (let i = pos + 1; i <= pos + len; i++) {
      let c = buf[i]!;
      if (c === 0x2e || c === 0x5c) {
        out.push(0x5c, c);
      } else if (c > 0x20 && c < 0x7f) {
        if (c >= 0x41 && c <= 0x5a) c |= 0x20;
        out.push(c);
      } else {
        out.push(0x5c, 0x30 + Math.floor(c / 100), 0x30 + (Math.floor(c / 10) % 10), 0x30 + (c % 10));
      }
    }
    out.push(0x2e);
    pos += 1 + len;
  }
  if (out.length === 0) return '.';
  return String.fromCharCode.apply(null, out);
}
