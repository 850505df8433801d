/**
 * Zone lists of the hosts plugin: the zones it serves (Origins) and its fallthrough zones.
 * Membership is miekg/dns IsSubDomain on normalised text: a name is in a zone when it equals
 * the zone or ends in `.` + zone at a label boundary (an escaped `\.` is not one); the root
 * holds every name.
 *
 * Zone arguments are read as CoreDNS's plugin.Host(...).NormalizeExact reads them: an optional
 * `dns://` and `:PORT` are dropped, a CIDR stands for its reverse zones (a prefix off a label
 * boundary expands to every zone of the next boundary: `10.0.0.0/15` is `10.in-addr.arpa.` and
 * `11.in-addr.arpa.`... as CoreDNS's cidr.Split does), and a word that is no zone is skipped
 * without an error, as CoreDNS skips it.
 */
import net from 'node:net';
import { normalizeZone } from '../../corefile/address.ts';
import { parseIp } from './ip.ts';

export class ZoneList {
  readonly zones: readonly string[];
  private readonly all: boolean;

  constructor(zones: readonly string[]) {
    this.zones = zones;
    this.all = zones.includes('.');
  }

  /** Whether lower-case, fully qualified `name` is in one of the zones. */
  contains(name: string): boolean {
    if (this.all) return true;
    const zones = this.zones;
    for (let i = 0; i < zones.length; i++) {
      const z = zones[i]!;
      if (name.length === z.length) {
        if (name === z) return true;
        continue;
      }
      if (name.length < z.length + 1 || !name.endsWith(z)) continue;
      const dot = name.length - z.length - 1;
      if (name.charCodeAt(dot) !== 0x2e) continue;
      let backslashes = 0;
      for (let j = dot - 1; j >= 0 && name.charCodeAt(j) === 0x5c; j--) backslashes++;
      if (backslashes % 2 === 0) return true;
    }
    return false;
  }
}

/** Reverse zones of a CIDR, expanded to label boundaries; null when `text` is no valid CIDR. */
function reverseZones(text: string): string[] | null {
  const m = /^([^/]+)\/([0-9]{1,3})$/.exec(text);
  if (!m) return null;
  const ipText = m[1]!;
  const prefix = Number(m[2]);
  if (net.isIPv4(ipText)) {
    if (prefix > 32) return null;
    const ip = parseIp(ipText)!.subarray(12);
    const bits = Math.ceil(prefix / 8) * 8;
    const out: string[] = [];
    for (let k = 0; k < 1 << (bits - prefix); k++) {
      // The network address with k in the bits between prefix and bits.
      let v = ((ip[0]! << 24) >>> 0) + (ip[1]! << 16) + (ip[2]! << 8) + ip[3]!;
      const hostBits = 32 - prefix;
      v = hostBits === 32 ? 0 : Math.floor(v / 2 ** hostBits) * 2 ** hostBits;
      v += k * 2 ** (32 - bits);
      const octets = [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff].slice(0, bits / 8).reverse();
      out.push([...octets, 'in-addr', 'arpa', ''].join('.'));
    }
    return out;
  }
  if (net.isIPv6(ipText)) {
    if (prefix > 128) return null;
    const ip = parseIp(ipText)!;
    const nibbles: number[] = [];
    for (const b of ip) nibbles.push(b >>> 4, b & 0xf);
    const bits = Math.ceil(prefix / 4) * 4;
    const out: string[] = [];
    for (let k = 0; k < 1 << (bits - prefix); k++) {
      const n = nibbles.slice(0, bits / 4);
      if (bits > prefix) {
        // The last nibble: its high (prefix % 4) bits from the network, the rest from k.
        const keep = 4 - (bits - prefix);
        const last = n.length - 1;
        n[last] = ((n[last]! >>> (4 - keep)) << (4 - keep)) | k;
      }
      out.push([...n.map((x) => x.toString(16)).reverse(), 'ip6', 'arpa', ''].join('.'));
    }
    return out;
  }
  return null;
}

/**
 * Zones of zone arguments (CoreDNS's OriginsFromArgsOrServerBlock and fall's SetZonesFromArgs):
 * normalised, duplicates kept out, words that are no zone skipped.
 */
export function zonesFromArgs(words: readonly string[]): string[] {
  const out: string[] = [];
  for (const word of words) {
    let s = word.replace(/^dns:\/\//i, '');
    const colon = s.lastIndexOf(':');
    if (colon === s.length - 1) continue;
    if (colon >= 0 && /^[0-9]+$/.test(s.slice(colon + 1))) s = s.slice(0, colon);
    if (s.length > 255 || s === '') continue;
    let zones: string[] | null = null;
    if (s.includes('/')) zones = reverseZones(s);
    if (zones === null) {
      if (/(^|[^\\])\.\./.test(s) || (s.startsWith('.') && s !== '.')) continue; // empty label: not a domain name
      zones = [normalizeZone(s)];
    }
    for (const z of zones) if (!out.includes(z)) out.push(z);
  }
  return out;
}
