/**
 * Zone membership of a query's name, tested on the wire bytes (no strings on the query path).
 * A name is in a zone when it equals the zone or lies below it (RFC 1034 §4.3.2 style
 * label-wise suffix match, case-insensitive per RFC 4343); the root zone holds every name.
 */
import { encodeName, equalBytesCI } from '../../wire/name.ts';
import { Header } from '../../wire/codes.ts';

export class ZoneSet {
  /** Normalised zone names (lower case, fully qualified), as configured. */
  readonly names: readonly string[];
  /** True when the set contains the root zone, so every name matches. */
  readonly matchesAll: boolean;
  private readonly wires: Uint8Array[];
  private readonly labelCounts: number[];
  private readonly scratch = new Uint8Array(128);

  constructor(zones: readonly string[]) {
    this.names = zones;
    this.matchesAll = zones.includes('.');
    this.wires = [];
    this.labelCounts = [];
    for (const z of zones) {
      if (z === '.') continue;
      const wire = encodeName(z);
      for (let i = 0; i < wire.length; i++) {
        const c = wire[i]!;
        // Label length bytes are < 64, so only letters are touched.
        if (c >= 0x41 && c <= 0x5a) wire[i] = c | 0x20;
      }
      let labels = 0;
      for (let p = 0; wire[p] !== 0; p += wire[p]! + 1) labels++;
      this.wires.push(wire);
      this.labelCounts.push(labels);
    }
  }

  get size(): number {
    return this.names.length;
  }

  /**
   * Like matches(), for an uncompressed, validated qname msg[12..qnameEnd) whose label
   * offsets are not at hand: the listeners' shared labelOffsets only describe the query
   * parsed last, so the response path (which runs later) must not read them.
   */
  matchesQname(msg: Uint8Array, qnameEnd: number): boolean {
    if (this.matchesAll) return true;
    const offsets = this.scratch;
    let n = 0;
    for (let p: number = Header.SIZE; p < qnameEnd && msg[p] !== 0 && n < offsets.length; p += msg[p]! + 1) offsets[n++] = p - Header.SIZE;
    return this.matches(msg, qnameEnd, n, offsets);
  }

  /**
   * Whether the uncompressed qname msg[12..qnameEnd), whose labels start at
   * 12 + labelOffsets[i] (i < labelCount), is in one of the zones.
   */
  matches(msg: Uint8Array, qnameEnd: number, labelCount: number, labelOffsets: Uint8Array): boolean {
    if (this.matchesAll) return true;
    const wires = this.wires;
    for (let i = 0; i < wires.length; i++) {
      const k = this.labelCounts[i]!;
      if (k > labelCount) continue;
      const wire = wires[i]!;
      const start = Header.SIZE + labelOffsets[labelCount - k]!;
      if (qnameEnd - start !== wire.length) continue;
      if (equalBytesCI(msg, start, wire, 0, wire.length)) return true;
    }
    return false;
  }
}
