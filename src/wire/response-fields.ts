/**
 * Header fields of a response for the log plugin's placeholders, bounds-checked: the flags
 * word and the full rcode (RFC 6891 §6.1.3: the header's 4 bits plus the OPT's extended bits).
 * Nothing is decoded beyond what they need; a message too short for a header gives -1.
 */
import { Header, QType } from './codes.ts';
import { skipName } from './name.ts';

function u16(b: Uint8Array, p: number): number {
  return (b[p]! << 8) | b[p + 1]!;
}

/** The 16-bit header flags word of buf[0..len), or -1 when len is shorter than a header. */
export function responseFlagsWord(buf: Uint8Array, len: number): number {
  if (len < Header.SIZE || len > buf.length) return -1;
  return u16(buf, 2);
}

/**
 * The full rcode of buf[0..len): the header's 4 bits, plus the extended bits of the OPT record
 * when the message walks to one (QDCOUNT 0 or 1). A record that does not walk gives the header
 * rcode; a message shorter than a header gives -1.
 */
export function responseFullRcode(buf: Uint8Array, len: number): number {
  if (len < Header.SIZE || len > buf.length) return -1;
  const rc = buf[3]! & 0x0f;
  const ar = u16(buf, 10);
  if (ar === 0) return rc;
  const qd = u16(buf, 4);
  if (qd > 1) return rc;
  const before = u16(buf, 6) + u16(buf, 8);
  let pos: number = Header.SIZE;
  if (qd === 1) {
    pos = skipName(buf, pos, len);
    if (pos < 0 || pos + 4 > len) return rc;
    pos += 4;
  }
  const total = before + ar;
  for (let i = 0; i < total; i++) {
    pos = skipName(buf, pos, len);
    if (pos < 0 || pos + 10 > len) return rc;
    if (u16(buf, pos) === QType.OPT && i >= before) return rc | (buf[pos + 4]! << 4);
    pos += 10 + u16(buf, pos + 8);
    if (pos > len) return rc;
  }
  return rc;
}
