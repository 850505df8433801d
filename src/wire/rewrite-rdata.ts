/**
 * Small byte helpers for the rewrite plugin: EDNS(0) option payloads it builds (client subnet,
 * addresses and ports for `{client_ip}`-style data) and the NAPTR replacement name, which the
 * codec keeps as raw rdata. Everything is bounds-checked; malformed input throws WireError.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { WireError, WireErrorCode } from './errors.ts';
import { encodeName, readName, skipName } from './name.ts';
import { ipv6Bytes } from './ip.ts';

/** EDNS(0) option codes (IANA registry) the rewrite plugin names. */
export const EdnsOption = { NSID: 3, SUBNET: 8 } as const;

/** 2-byte big-endian form of a 16-bit value (`{qtype}`, ports). */
export function uint16Bytes(v: number): Uint8Array {
  return Uint8Array.of((v >>> 8) & 0xff, v & 0xff);
}

/**
 * Address family as Go's net.IP sees it: 4 for IPv4 and IPv4-mapped IPv6 (`::ffff:a.b.c.d`,
 * which dual-stack sockets report), 6 for other IPv6, 0 for text that is not an address.
 */
export function addressFamily(addr: string): 0 | 4 | 6 {
  if (isIPv4(addr)) return 4;
  if (!isIPv6(addr)) return 0;
  return mappedV4(addr) !== null ? 4 : 6;
}

function mappedV4(addr: string): string | null {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return m !== null && isIPv4(m[1]!) ? m[1]! : null;
}

/**
 * Wire form of an address for `{client_ip}`/`{server_ip}` as CoreDNS's ipToWire writes it:
 * 4 bytes when `family` is 4 (an IPv4-mapped address is unmapped), 16 when it is 6 (an IPv4
 * address is mapped). null when the text is not an address.
 */
export function addressBytes(addr: string, family: 4 | 6): Uint8Array | null {
  const v4text = isIPv4(addr) ? addr : mappedV4(addr);
  if (family === 4) {
    if (v4text === null) return null;
    return Uint8Array.from(v4text.split('.').map(Number));
  }
  if (v4text !== null) {
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    out.set(v4text.split('.').map(Number), 12);
    return out;
  }
  return isIPv6(addr) ? ipv6Bytes(addr.replace(/%.*$/, '')) : null;
}

/**
 * EDNS Client Subnet option data (RFC 7871 §6) for the client address: FAMILY, SOURCE
 * PREFIX-LENGTH, SCOPE 0 and the address masked to the prefix, cut to whole bytes.
 */
export function clientSubnetData(addr: string, v4Prefix: number, v6Prefix: number): Uint8Array | null {
  const family = addressFamily(addr);
  if (family === 0) return null;
  const full = addressBytes(addr, family);
  if (full === null) return null;
  const prefix = family === 4 ? v4Prefix : v6Prefix;
  if (prefix < 0 || prefix > full.length * 8) throw new WireError(WireErrorCode.BAD_LABEL, `bad subnet prefix ${prefix}`);
  const n = Math.ceil(prefix / 8);
  const out = new Uint8Array(4 + n);
  out[0] = 0;
  out[1] = family === 4 ? 1 : 2;
  out[2] = prefix;
  out[3] = 0;
  for (let i = 0; i < n; i++) {
    const bits = prefix - i * 8;
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    out[4 + i] = full[i]! & mask;
  }
  return out;
}

/** Offset of the replacement name in NAPTR rdata (RFC 3403 §4.1), after the three strings. */
function naptrNameOffset(rdata: Uint8Array): number {
  let p = 4;
  for (let i = 0; i < 3; i++) {
    if (p >= rdata.length) throw new WireError(WireErrorCode.TRUNCATED, 'NAPTR rdata runs short', p);
    p += 1 + rdata[p]!;
  }
  if (p >= rdata.length) throw new WireError(WireErrorCode.TRUNCATED, 'NAPTR rdata runs short', p);
  return p;
}

/** The replacement name of NAPTR rdata. Throws WireError when the rdata is malformed. */
export function naptrReplacement(rdata: Uint8Array): string {
  const p = naptrNameOffset(rdata);
  const { name, next } = readName(rdata, p, rdata.length);
  if (next !== rdata.length) throw new WireError(WireErrorCode.TRUNCATED, 'NAPTR rdata has trailing bytes', next);
  return name;
}

/** NAPTR rdata with its replacement name set to `name` (uncompressed, as RFC 3403 requires). */
export function withNaptrReplacement(rdata: Uint8Array, name: string): Uint8Array {
  const p = naptrNameOffset(rdata);
  if (skipName(rdata, p, rdata.length) < 0) throw new WireError(WireErrorCode.TRUNCATED, 'NAPTR replacement malformed', p);
  const wire = encodeName(name);
  const out = new Uint8Array(p + wire.length);
  out.set(rdata.subarray(0, p), 0);
  out.set(wire, p);
  return out;
}
