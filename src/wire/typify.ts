/**
 * CoreDNS's response typing (plugin/pkg/response: Typify) on a scanned response: the cache
 * decides with it what to store and for how long, the log plugin (with its Classify) which
 * class a response belongs to. No I/O; reads only bytes that scanResponse bounds-checked.
 */
import { Flag, Opcode, QType, Rcode } from './codes.ts';
import type { ResponseScan } from './message.ts';

/** Response types of CoreDNS's response.Typify. */
export const ResponseClass = {
  NO_ERROR: 0,
  DELEGATION: 1,
  NAME_ERROR: 2,
  NO_DATA: 3,
  /** SERVFAIL and NOTIMP. */
  SERVER_ERROR: 4,
  /** OtherError, Meta (NOTIFY, AXFR, IXFR) and Update: never cached. */
  UNCACHEABLE: 5,
} as const;
export type ResponseClassValue = (typeof ResponseClass)[keyof typeof ResponseClass];

/**
 * CoreDNS response.Typify on a message scanned into `s` (the DO-bit RRSIG expiry check left
 * out): `msg` is the scanned buffer.
 */
export function typify(s: ResponseScan, msg: Uint8Array): ResponseClassValue {
  const opcode = (s.flags & Flag.OPCODE_MASK) >>> Flag.OPCODE_SHIFT;
  if (opcode === Opcode.UPDATE || opcode === Opcode.NOTIFY) return ResponseClass.UNCACHEABLE;
  if (s.qtype === QType.AXFR || s.qtype === QType.IXFR) return ResponseClass.UNCACHEABLE;
  const rcode = s.rcode;
  if (s.ancount > 0 && rcode === Rcode.NOERROR) return ResponseClass.NO_ERROR;
  let soa = false;
  let ns = 0;
  const offs = s.ttlOffsets;
  const authEnd = Math.min(offs.length, s.ancount + s.nscount);
  for (let i = s.ancount; i < authEnd; i++) {
    // The TYPE field sits 4 bytes before TTL.
    const o = offs[i]! - 4;
    const type = (msg[o]! << 8) | msg[o + 1]!;
    if (type === QType.SOA) soa = true;
    else if (type === QType.NS) ns++;
  }
  if (soa && rcode === Rcode.NOERROR) return ResponseClass.NO_DATA;
  if (soa && rcode === Rcode.NXDOMAIN) return ResponseClass.NAME_ERROR;
  if (rcode === Rcode.SERVFAIL || rcode === Rcode.NOTIMP) return ResponseClass.SERVER_ERROR;
  if (ns > 0 && rcode === Rcode.NOERROR) return ResponseClass.DELEGATION;
  if (rcode === Rcode.NOERROR) return ResponseClass.NO_ERROR;
  return ResponseClass.UNCACHEABLE;
}
