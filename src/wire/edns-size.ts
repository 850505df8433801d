/**
 * Lowering a query's EDNS(0) UDP payload size in place (the `bufsize` plugin, CoreDNS
 * plugin/bufsize): the OPT's CLASS field (RFC 6891 §6.1.2) is rewritten in the request bytes, so
 * what is forwarded upstream carries the smaller size.
 */
import { Edns, QType } from './codes.ts';

/**
 * When the OPT record at msg[optOffset] (as parseQuery found it) advertises more than `max`,
 * writes `max` there. Returns the payload size the OPT now holds, or -1 when there is no
 * well-formed OPT record header at optOffset inside msg[0..len) (nothing is written then).
 */
export function clampOptUdpSize(msg: Uint8Array, len: number, optOffset: number, max: number): number {
  if (optOffset < 12 || optOffset + Edns.OPT_FIXED_SIZE > len || len > msg.length) return -1;
  // Owner is the root (one zero byte), TYPE is OPT.
  if (msg[optOffset] !== 0 || msg[optOffset + 1] !== 0 || msg[optOffset + 2] !== QType.OPT) return -1;
  const at = optOffset + 3;
  const size = (msg[at]! << 8) | msg[at + 1]!;
  if (size <= max) return size;
  msg[at] = (max >>> 8) & 0xff;
  msg[at + 1] = max & 0xff;
  return max;
}
