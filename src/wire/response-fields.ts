/**
 * Header fields of a response for the log and dns64 plugins, bounds-checked: the flags word
 * and the full rcode (RFC 6891 §6.1.3: the header's 4 bits plus the OPT's extended bits), the
 * latter read by scanResponse like every other rcode. A message shorter than a header, or a
 * len beyond the buffer, gives -1.
 */
import { Header } from './codes.ts';
import { messageFlags } from './header.ts';
import { ResponseScan } from './message.ts';
import { replyFullRcode } from './reply.ts';

/** Reused: callers are synchronous. */
const scan = new ResponseScan();

/** The 16-bit header flags word of buf[0..len), or -1 when len is shorter than a header. */
export function responseFlagsWord(buf: Uint8Array, len: number): number {
  if (len < Header.SIZE || len > buf.length) return -1;
  return messageFlags(buf);
}

/**
 * The full rcode of buf[0..len) (QDCOUNT 0 or 1): the header's 4 bits plus the OPT's extended
 * bits when the message scans; a message that does not scan gives the header rcode.
 */
export function responseFullRcode(buf: Uint8Array, len: number): number {
  if (len < Header.SIZE || len > buf.length) return -1;
  return replyFullRcode(buf, len, scan);
}
