/**
 * DNS protocol constants (RFC 1035 §4.1, RFC 6891, RFC 6895 registries).
 * Const objects, not enums, so the file stays erasable TypeScript.
 */

/** Header field offsets and flag masks of the 16-bit flags word (bytes 2..3). */
export const Header = {
  SIZE: 12,
  ID: 0,
  FLAGS: 2,
  QDCOUNT: 4,
  ANCOUNT: 6,
  NSCOUNT: 8,
  ARCOUNT: 10,
} as const;

export const Flag = {
  QR: 0x8000,
  OPCODE_MASK: 0x7800,
  OPCODE_SHIFT: 11,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  Z: 0x0040,
  AD: 0x0020,
  CD: 0x0010,
  RCODE_MASK: 0x000f,
} as const;

export const Opcode = {
  QUERY: 0,
  IQUERY: 1,
  STATUS: 2,
  NOTIFY: 4,
  UPDATE: 5,
} as const;

export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
  YXDOMAIN: 6,
  YXRRSET: 7,
  NXRRSET: 8,
  NOTAUTH: 9,
  NOTZONE: 10,
  BADVERS: 16,
} as const;

/** Rcode names as CoreDNS (miekg/dns RcodeToString) prints them, indexed by value. */
export const RCODE_NAMES: readonly string[] = [
  'NOERROR',
  'FORMERR',
  'SERVFAIL',
  'NXDOMAIN',
  'NOTIMP',
  'REFUSED',
  'YXDOMAIN',
  'YXRRSET',
  'NXRRSET',
  'NOTAUTH',
  'NOTZONE',
  'RCODE11',
  'RCODE12',
  'RCODE13',
  'RCODE14',
  'RCODE15',
  'BADVERS',
];

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

export const QType = {
  A: 1,
  NS: 2,
  CNAME: 5,
  SOA: 6,
  PTR: 12,
  HINFO: 13,
  MX: 15,
  TXT: 16,
  AAAA: 28,
  SRV: 33,
  NAPTR: 35,
  DS: 43,
  OPT: 41,
  RRSIG: 46,
  NSEC: 47,
  DNSKEY: 48,
  NSEC3: 50,
  HTTPS: 65,
  SVCB: 64,
  IXFR: 251,
  AXFR: 252,
  ANY: 255,
  CAA: 257,
} as const;

export const QClass = {
  IN: 1,
  CH: 3,
  HS: 4,
  NONE: 254,
  ANY: 255,
} as const;

const TYPE_NAMES = new Map<number, string>(Object.entries(QType).map(([k, v]) => [v, k]));
const CLASS_NAMES = new Map<number, string>(Object.entries(QClass).map(([k, v]) => [v, k]));

/** Type mnemonic (RFC 3597 form `TYPE123` for unknown types). */
export function typeName(qtype: number): string {
  return TYPE_NAMES.get(qtype) ?? `TYPE${qtype}`;
}

export function className(qclass: number): string {
  return CLASS_NAMES.get(qclass) ?? `CLASS${qclass}`;
}

/** EDNS(0) (RFC 6891 §6.1.3): DO is bit 15 of the OPT TTL's low 16 bits. */
export const Edns = {
  DO: 0x8000,
  /** RFC 6891 §6.2.5: values below 512 are treated as 512. */
  MIN_UDP_SIZE: 512,
  /** DNS flag day 2020 default for what we advertise. */
  ADVERTISED_UDP_SIZE: 1232,
  OPT_FIXED_SIZE: 11,
} as const;

/** Sizes and limits from RFC 1035 §2.3.4 and §4.2.1. */
export const Limits = {
  MAX_NAME_WIRE: 255,
  MAX_LABEL: 63,
  UDP_CLASSIC: 512,
  MAX_MESSAGE: 65535,
} as const;
