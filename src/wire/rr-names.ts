/**
 * Mnemonic <-> number tables for RR types, classes and rcodes as miekg/dns (and so CoreDNS)
 * accepts them in configuration: `dns.StringToType`, `dns.StringToClass`, `dns.StringToRcode`.
 * Lookups are exact on the table's spelling (callers upper-case first, as CoreDNS does), so
 * `None`, `Reserved` and `NSAP-PTR` keep miekg's spelling.
 */

const TYPES: ReadonlyArray<readonly [string, number]> = [
  ['None', 0],
  ['A', 1],
  ['NS', 2],
  ['MD', 3],
  ['MF', 4],
  ['CNAME', 5],
  ['SOA', 6],
  ['MB', 7],
  ['MG', 8],
  ['MR', 9],
  ['NULL', 10],
  ['PTR', 12],
  ['HINFO', 13],
  ['MINFO', 14],
  ['MX', 15],
  ['TXT', 16],
  ['RP', 17],
  ['AFSDB', 18],
  ['X25', 19],
  ['ISDN', 20],
  ['RT', 21],
  ['NSAP-PTR', 23],
  ['SIG', 24],
  ['KEY', 25],
  ['PX', 26],
  ['GPOS', 27],
  ['AAAA', 28],
  ['LOC', 29],
  ['NXT', 30],
  ['EID', 31],
  ['NIMLOC', 32],
  ['SRV', 33],
  ['ATMA', 34],
  ['NAPTR', 35],
  ['KX', 36],
  ['CERT', 37],
  ['DNAME', 39],
  ['OPT', 41],
  ['APL', 42],
  ['DS', 43],
  ['SSHFP', 44],
  ['IPSECKEY', 45],
  ['RRSIG', 46],
  ['NSEC', 47],
  ['DNSKEY', 48],
  ['DHCID', 49],
  ['NSEC3', 50],
  ['NSEC3PARAM', 51],
  ['TLSA', 52],
  ['SMIMEA', 53],
  ['HIP', 55],
  ['NINFO', 56],
  ['RKEY', 57],
  ['TALINK', 58],
  ['CDS', 59],
  ['CDNSKEY', 60],
  ['OPENPGPKEY', 61],
  ['CSYNC', 62],
  ['ZONEMD', 63],
  ['SVCB', 64],
  ['HTTPS', 65],
  ['SPF', 99],
  ['UINFO', 100],
  ['UID', 101],
  ['GID', 102],
  ['UNSPEC', 103],
  ['NID', 104],
  ['L32', 105],
  ['L64', 106],
  ['LP', 107],
  ['EUI48', 108],
  ['EUI64', 109],
  ['NXNAME', 128],
  ['TKEY', 249],
  ['TSIG', 250],
  ['IXFR', 251],
  ['AXFR', 252],
  ['MAILB', 253],
  ['MAILA', 254],
  ['ANY', 255],
  ['URI', 256],
  ['CAA', 257],
  ['AVC', 258],
  ['AMTRELAY', 260],
  ['RESINFO', 261],
  ['TA', 32768],
  ['DLV', 32769],
  ['Reserved', 65535],
];

const CLASSES: ReadonlyArray<readonly [string, number]> = [
  ['IN', 1],
  ['CS', 2],
  ['CH', 3],
  ['HS', 4],
  ['NONE', 254],
  ['ANY', 255],
];

/** miekg's RcodeToString inverted (the last spelling of a value wins there, BADSIG/BADVERS share 16). */
const RCODES: ReadonlyArray<readonly [string, number]> = [
  ['NOERROR', 0],
  ['FORMERR', 1],
  ['SERVFAIL', 2],
  ['NXDOMAIN', 3],
  ['NOTIMP', 4],
  ['REFUSED', 5],
  ['YXDOMAIN', 6],
  ['YXRRSET', 7],
  ['NXRRSET', 8],
  ['NOTAUTH', 9],
  ['NOTZONE', 10],
  ['BADSIG', 16],
  ['BADVERS', 16],
  ['BADKEY', 17],
  ['BADTIME', 18],
  ['BADMODE', 19],
  ['BADNAME', 20],
  ['BADALG', 21],
  ['BADTRUNC', 22],
  ['BADCOOKIE', 23],
];

const TYPE_BY_NAME = new Map(TYPES);
const CLASS_BY_NAME = new Map(CLASSES);
const RCODE_BY_NAME = new Map(RCODES);

/** `dns.StringToType[s]`, or -1. */
export function typeByName(s: string): number {
  return TYPE_BY_NAME.get(s) ?? -1;
}

/** `dns.StringToClass[s]`, or -1. */
export function classByName(s: string): number {
  return CLASS_BY_NAME.get(s) ?? -1;
}

/** `dns.StringToRcode[s]`, or -1. */
export function rcodeByName(s: string): number {
  return RCODE_BY_NAME.get(s) ?? -1;
}
