/**
 * The one zone matcher: is a name equal to a zone or below it? Label-wise suffix match,
 * case-insensitive (RFC 4343), the root zone holding every name (miekg/dns IsSubDomain,
 * CoreDNS plugin.Zones.Matches). Everything matches on the wire form:
 *
 *  - `ZoneMatcher`: zones set up once, matched against a query's uncompressed, validated qname
 *    msg[12..qnameEnd) without strings or allocation (server routing, cache, forward).
 *  - `nameInZone`: the same test on presentation-format text (slow paths: template, log).
 *
 * No label offsets are needed: the zone can only sit at qnameEnd - zone length, so the bytes
 * there are compared and then that position is checked to be a label start by walking the
 * qname's length bytes.
 */
import { Header } from './codes.ts';
import { encodeName, equalBytesCI, lowerByte } from './name.ts';

/** Lower-cased uncompressed wire form of a zone name (`.` is one zero byte). */
export function zoneWire(zone: string): Uint8Array {
  const wire = encodeName(zone);
  // Label length bytes are < 64, so only letters change.
  for (let i = 0; i < wire.length; i++) wire[i] = lowerByte(wire[i]!);
  return wire;
}

/**
 * True when the uncompressed name buf[start..end) (ending in the root label) equals the
 * lower-cased wire zone `zone` or lies below it.
 */
export function wireNameInZone(buf: Uint8Array, start: number, end: number, zone: Uint8Array): boolean {
  const zl = zone.length;
  if (zl === 1) return true;
  const at = end - zl;
  if (at < start || !equalBytesCI(buf, at, zone, 0, zl)) return false;
  let p = start;
  while (p < at) p += buf[p]! + 1;
  return p === at;
}

/** Whether the qname msg[12..qnameEnd) of a parsed query is in the wire zone `zone`. */
export function qnameInZone(msg: Uint8Array, qnameEnd: number, zone: Uint8Array): boolean {
  return wireNameInZone(msg, Header.SIZE, qnameEnd, zone);
}

/** Text form (slow paths): `qname` equals `zone` or is below it; names that do not encode match nothing but the root. */
export function nameInZone(qname: string, zone: string): boolean {
  let z: Uint8Array;
  let q: Uint8Array;
  try {
    z = zoneWire(zone);
    if (z.length === 1) return true;
    q = encodeName(qname);
  } catch {
    return false;
  }
  return wireNameInZone(q, 0, q.length, z);
}

export interface ZoneEntry<T> {
  /** The zone as added (normalised text, `cluster.local.`). */
  readonly zone: string;
  /** Lower-cased wire form. */
  readonly wire: Uint8Array;
  readonly labelCount: number;
  readonly target: T;
}

/** A set of zones, each with a target; a query's name matches the longest zone it is in. */
export class ZoneMatcher<T> {
  /** Longest first (label count, then wire length), so the first match is the longest suffix. */
  private readonly entries: ZoneEntry<T>[] = [];
  /** True once the root zone was added: every name is in the set. */
  matchesAll = false;

  /** A matcher whose targets are the zone names themselves. */
  static of(zones: readonly string[]): ZoneMatcher<string> {
    const m = new ZoneMatcher<string>();
    for (const z of zones) m.add(z, z);
    return m;
  }

  add(zone: string, target: T): void {
    const wire = zoneWire(zone);
    let labelCount = 0;
    for (let p = 0; wire[p] !== 0; p += wire[p]! + 1) labelCount++;
    if (labelCount === 0) this.matchesAll = true;
    this.entries.push({ zone, wire, labelCount, target });
    this.entries.sort((a, b) => b.labelCount - a.labelCount || b.wire.length - a.wire.length);
  }

  get size(): number {
    return this.entries.length;
  }

  /** Every entry, longest first. */
  all(): readonly ZoneEntry<T>[] {
    return this.entries;
  }

  /** The entry of the longest zone holding the qname msg[12..qnameEnd), or null. */
  match(msg: Uint8Array, qnameEnd: number): ZoneEntry<T> | null {
    const entries = this.entries;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (wireNameInZone(msg, Header.SIZE, qnameEnd, e.wire)) return e;
    }
    return null;
  }

  /** Whether any zone holds the qname msg[12..qnameEnd). */
  contains(msg: Uint8Array, qnameEnd: number): boolean {
    return this.matchesAll || this.match(msg, qnameEnd) !== null;
  }
}
