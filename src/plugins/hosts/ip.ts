/**
 * IP address text as the hosts plugin reads and prints it, following Go's net package (which
 * CoreDNS's hosts plugin relies on):
 *
 *  - parseIp: an IPv4 dotted quad (no leading zeros) or an IPv6 address (RFC 4291 §2.2,
 *    embedded IPv4 tail allowed); a `%zone` suffix is dropped first, as the hosts plugin does.
 *    The result is the 16-byte form (IPv4 as ::ffff:a.b.c.d, RFC 4291 §2.5.5.2).
 *  - ipText: Go's net.IP.String(): an IPv4 or IPv4-mapped address prints as a dotted quad,
 *    anything else as RFC 5952 text (lower case, the first longest run of two or more zero
 *    groups written `::`).
 *  - addressFromReverse: the address a reverse name (RFC 1035 §3.5 in-addr.arpa, RFC 3596 §2.5
 *    ip6.arpa) stands for, as CoreDNS's dnsutil.ExtractAddressFromReverse computes it.
 */
import net from 'node:net';
import { ipv6GroupsText } from '../../wire/ip.ts';

/** 16 bytes, network order. */
export type Ip16 = Uint8Array;

function parseV4Into(text: string, out: Uint8Array, at: number): void {
  const parts = text.split('.');
  for (let i = 0; i < 4; i++) out[at + i] = Number(parts[i]);
}

/** Parses an address (Go net.ParseIP after dropping a zone), or null. */
export function parseIp(text: string): Ip16 | null {
  const pct = text.indexOf('%');
  if (pct >= 0) text = text.slice(0, pct);
  if (net.isIPv4(text)) {
    const out = new Uint8Array(16);
    out[10] = 0xff;
    out[11] = 0xff;
    parseV4Into(text, out, 12);
    return out;
  }
  if (!net.isIPv6(text)) return null;
  let body = text;
  const dot = body.indexOf('.');
  if (dot >= 0) {
    // The dotted tail stands for the last two groups.
    const colon = body.lastIndexOf(':');
    const b = body
      .slice(colon + 1)
      .split('.')
      .map(Number);
    body = `${body.slice(0, colon + 1)}${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const groupsOf = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const dbl = body.indexOf('::');
  const head = groupsOf(dbl >= 0 ? body.slice(0, dbl) : body);
  const tail = dbl >= 0 ? groupsOf(body.slice(dbl + 2)) : [];
  const out = new Uint8Array(16);
  const write = (g: string, i: number): void => {
    const v = parseInt(g, 16);
    out[i * 2] = v >>> 8;
    out[i * 2 + 1] = v & 0xff;
  };
  head.forEach((g, i) => write(g, i));
  tail.forEach((g, i) => write(g, 8 - tail.length + i));
  return out;
}

/** True for an IPv4 or IPv4-mapped address (Go's To4() != nil). */
export function isV4(ip: Ip16): boolean {
  for (let i = 0; i < 10; i++) if (ip[i] !== 0) return false;
  return ip[10] === 0xff && ip[11] === 0xff;
}

/** Go's net.IP.String() for a 16-byte address. */
export function ipText(ip: Ip16): string {
  if (isV4(ip)) return `${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push((ip[i * 2]! << 8) | ip[i * 2 + 1]!);
  return ipv6GroupsText(groups);
}

const IP4_ARPA = '.in-addr.arpa.';
const IP6_ARPA = '.ip6.arpa.';

/**
 * The address text a reverse name stands for, or '' when it stands for none. `name` is lower
 * case and fully qualified. IPv4: the labels before `.in-addr.arpa.` reversed must read as an
 * address with an IPv4 form. IPv6: the labels before `.ip6.arpa.` reversed, taken four at a
 * time (labels beyond a multiple of four, i.e. the leftmost ones, are ignored, as CoreDNS
 * does), must read as eight groups.
 */
export function addressFromReverse(name: string): string {
  if (name.endsWith(IP4_ARPA)) {
    const labels = name.slice(0, -IP4_ARPA.length).split('.').reverse();
    const ip = parseIp(labels.join('.'));
    // Go: ParseIP(...).To4(); the zone drop of parseIp does not apply to net.ParseIP.
    if (ip === null || !isV4(ip) || labels.join('.').includes('%')) return '';
    return ipText(ip);
  }
  if (name.endsWith(IP6_ARPA)) {
    const labels = name.slice(0, -IP6_ARPA.length).split('.').reverse();
    const groups: string[] = [];
    for (let i = 0; i + 4 <= labels.length; i += 4) groups.push(labels[i]! + labels[i + 1]! + labels[i + 2]! + labels[i + 3]!);
    const text = groups.join(':');
    if (text.includes('%')) return '';
    const ip = parseIp(text);
    return ip === null ? '' : ipText(ip);
  }
  return '';
}
