/**
 * Server block keys (`[dns://]ZONE[:PORT]`) and zone names, as CoreDNS reads them
 * (core/dnsserver/address.go, plugin/normalize.go).
 *
 *  - Zones are lower-cased and made fully qualified: `Cluster.Local:53` → `cluster.local.`.
 *  - The port is a trailing `:DIGITS`, 0..65535 (0 asks the kernel for a free port, which CoreDNS
 *    also allows); without one the port is null and `-dns.port` applies.
 *  - A zone written as a CIDR is the reverse zone of that network (RFC 1035 §3.5 in-addr.arpa,
 *    RFC 3596 §2.5 ip6.arpa): `10.0.0.0/24` → `0.0.10.in-addr.arpa.`. Only prefixes on a label
 *    boundary (a multiple of 8 bits for IPv4, 4 for IPv6) are accepted: a key names one zone here,
 *    whereas CoreDNS expands other prefixes into several zones.
 *  - Only `dns://` (or no scheme) is served; tls://, https://, grpc://, quic:// ... are config errors.
 */
import net from 'node:net';
import { CorefileError, excerpt } from './errors.ts';
import type { ServerAddress, Token } from './types.ts';

/** Schemes CoreDNS knows (plugin/pkg/transport), all but dns:// unsupported here. */
const OTHER_SCHEMES = ['tls', 'https', 'grpc', 'quic', 'https3', 'unix'];

/** Longest zone name in presentation form with its final dot (255 octets on the wire, RFC 1035 §2.3.4). */
const MAX_NAME_TEXT = 254;
const MAX_LABEL = 63;

/** Lower-cases `name` and makes it fully qualified (`.` appended unless it ends in an unescaped dot). */
export function normalizeZone(name: string): string {
  const lower = name.toLowerCase();
  return isFqdn(lower) ? lower : lower + '.';
}

/** True when `name` ends in a dot that is not escaped by an odd number of backslashes (miekg/dns IsFqdn). */
function isFqdn(name: string): boolean {
  if (!name.endsWith('.')) return false;
  return precedingBackslashes(name, name.length - 1) % 2 === 0;
}

function precedingBackslashes(s: string, i: number): number {
  let n = 0;
  for (let j = i - 1; j >= 0 && s[j] === '\\'; j--) n++;
  return n;
}

/** Parses a server block key. Throws CorefileError at the key's line. */
export function parseServerKey(tok: Token): ServerAddress {
  const fail = (detail: string): never => {
    throw new CorefileError(tok.file, tok.line, detail);
  };
  let s = tok.text;

  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(s);
  if (scheme) {
    const name = scheme[1]!.toLowerCase();
    if (name !== 'dns') {
      const known = OTHER_SCHEMES.includes(name) ? '' : 'unknown ';
      fail(`${known}scheme '${excerpt(name)}://' in server key '${excerpt(tok.text)}': only dns:// is served by node-local-dns`);
    }
    s = s.slice(scheme[0].length);
  }

  let host = s;
  let port: number | null = null;
  const colon = s.lastIndexOf(':');
  if (colon !== -1) {
    const portText = s.slice(colon + 1);
    if (portText === '') fail(`expecting data after last colon: "${excerpt(tok.text)}"`);
    if (/^[0-9]+$/.test(portText)) {
      port = Number(portText);
      if (port > 65535) fail(`port ${excerpt(portText)} out of range 0..65535 in server key '${excerpt(tok.text)}'`);
      host = s.slice(0, colon);
    } else if (!portText.includes('/')) {
      // A '/' after the last colon is an IPv6 CIDR (`fd00::/8`); anything else is a bad port.
      fail(`invalid port '${excerpt(portText)}' in server key '${excerpt(tok.text)}'`);
    }
  }

  const zone = host.includes('/') ? reverseZone(host, fail) : checkZone(normalizeZone(host), tok.text, fail);
  return { scheme: 'dns', zone, port };
}

/** Validates label and name lengths of a normalised zone (miekg/dns IsDomainName limits). */
function checkZone(zone: string, key: string, fail: (detail: string) => never): string {
  if (zone === '.') return zone;
  if (zone.length > MAX_NAME_TEXT) fail(`specified zone is too long: ${zone.length - 1} > 253 in server key '${excerpt(key)}'`);
  const labels = zone.slice(0, -1).split('.');
  for (const label of labels) {
    if (label === '') fail(`zone is not a valid domain name: ${excerpt(zone)} (empty label) in server key '${excerpt(key)}'`);
    if (label.length > MAX_LABEL) fail(`zone is not a valid domain name: ${excerpt(zone)} (label longer than 63) in server key '${excerpt(key)}'`);
    if (/[\s\u0000-\u001f\u007f]/.test(label)) fail(`zone is not a valid domain name: ${JSON.stringify(excerpt(zone))} in server key '${excerpt(key)}'`);
  }
  return zone;
}

/** `10.0.0.0/24` → `0.0.10.in-addr.arpa.`; `fd00::/8` → `d.f.ip6.arpa.`. */
function reverseZone(cidr: string, fail: (detail: string) => never): string {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(cidr);
  if (!m || m[1]!.includes('%')) return fail(`invalid CIDR '${excerpt(cidr)}'`);
  const ip = m[1]!;
  const prefix = Number(m[2]);
  if (net.isIPv4(ip)) {
    if (prefix > 32) fail(`invalid CIDR '${excerpt(cidr)}': prefix longer than 32`);
    if (prefix % 8 !== 0) fail(`reverse zone CIDR '${excerpt(cidr)}' must have a prefix length that is a multiple of 8`);
    const octets = ip
      .split('.')
      .slice(0, prefix / 8)
      .reverse();
    return [...octets, 'in-addr', 'arpa', ''].join('.');
  }
  if (net.isIPv6(ip)) {
    if (prefix > 128) fail(`invalid CIDR '${excerpt(cidr)}': prefix longer than 128`);
    if (prefix % 4 !== 0) fail(`reverse zone CIDR '${excerpt(cidr)}' must have a prefix length that is a multiple of 4`);
    const nibbles = ipv6Nibbles(ip)
      .slice(0, prefix / 4)
      .reverse();
    return [...nibbles, 'ip6', 'arpa', ''].join('.');
  }
  return fail(`invalid CIDR '${excerpt(cidr)}'`);
}

/** The 32 hex digits of a valid IPv6 address, most significant first. */
function ipv6Nibbles(ip: string): string[] {
  let text = ip.toLowerCase();
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const b = v4.slice(1, 5).map(Number);
    const hi = ((b[0]! << 8) | b[1]!).toString(16);
    const lo = ((b[2]! << 8) | b[3]!).toString(16);
    text = text.slice(0, v4.index) + `${hi}:${lo}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill('0');
  return [...headGroups, ...fill, ...tailGroups].flatMap((g) => g.padStart(4, '0').split(''));
}
