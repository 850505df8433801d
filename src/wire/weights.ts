/**
 * The weight table of loadbalance's `weighted` policy (CoreDNS plugin/loadbalance weighted.go),
 * looked up straight from a response's bytes: the owner name of an address record is hashed and
 * compared on the wire (following compression pointers, ASCII case folded) and its address
 * compared with the listed ones, so a lookup allocates nothing.
 */
import { encodeName, lowerByte } from './name.ts';

interface DomainWeights {
  /** Uncompressed wire form of the domain, lower-cased. */
  wire: Uint8Array;
  /** 16-byte addresses (IPv4 as IPv4-mapped IPv6, as Go's net.IP.Equal compares them). */
  addrs: Uint8Array[];
  values: number[];
}

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** 16 bytes of an address given as 4 or 16 bytes. */
export function ip16(b: Uint8Array): Uint8Array {
  if (b.length === 16) return b;
  const out = new Uint8Array(16);
  out[10] = 0xff;
  out[11] = 0xff;
  out.set(b, 12);
  return out;
}

export class WeightTable {
  private readonly byHash = new Map<number, DomainWeights[]>();
  /** Domains in the table (for logs and tests). */
  size = 0;

  /** Adds `addr` (4 or 16 bytes) with weight 1..255 under `domain` (presentation text, absolute). */
  add(domain: string, addr: Uint8Array, value: number): void {
    const wire = encodeName(domain);
    for (let i = 0; i < wire.length; i++) wire[i] = lowerByte(wire[i]!);
    const h = hashWire(wire);
    let list = this.byHash.get(h);
    if (list === undefined) this.byHash.set(h, (list = []));
    let d = list.find((x) => x.wire.length === wire.length && x.wire.every((b, i) => b === wire[i]));
    if (d === undefined) {
      d = { wire, addrs: [], values: [] };
      list.push(d);
      this.size++;
    }
    d.addrs.push(ip16(addr));
    d.values.push(value);
  }

  /**
   * The weight of the address record whose owner name starts at buf[owner] and whose RDATA
   * (4 or 16 bytes) is buf[rd..rd+rdlen): the first listed weight for an equal address under
   * that name, else 1 (CoreDNS's default). `len` bounds every read.
   */
  weightOf(buf: Uint8Array, len: number, owner: number, rd: number, rdlen: number): number {
    if (this.size === 0) return 1;
    const h = hashName(buf, len, owner);
    if (h === null) return 1;
    const list = this.byHash.get(h);
    if (list === undefined) return 1;
    for (const d of list) {
      if (!nameEquals(buf, len, owner, d.wire)) continue;
      for (let i = 0; i < d.addrs.length; i++) if (addrEquals(buf, rd, rdlen, d.addrs[i]!)) return d.values[i]!;
      return 1;
    }
    return 1;
  }
}

function hashWire(wire: Uint8Array): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < wire.length; i++) h = Math.imul(h ^ wire[i]!, FNV_PRIME);
  return h | 0;
}

/** FNV-1a over the expanded, lower-cased name at buf[pos]; null when it is malformed. */
function hashName(buf: Uint8Array, len: number, pos: number): number | null {
  let h = FNV_OFFSET;
  let lowest = pos;
  for (let hops = 0; hops < 256; hops++) {
    if (pos >= len) return null;
    const b = buf[pos]!;
    if ((b & 0xc0) === 0xc0) {
      if (pos + 1 >= len) return null;
      const target = ((b & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= lowest) return null;
      lowest = target;
      pos = target;
      continue;
    }
    if ((b & 0xc0) !== 0 || pos + 1 + b > len) return null;
    h = Math.imul(h ^ b, FNV_PRIME);
    if (b === 0) return h | 0;
    for (let i = pos + 1; i <= pos + b; i++) h = Math.imul(h ^ lowerByte(buf[i]!), FNV_PRIME);
    pos += 1 + b;
  }
  return null;
}

function nameEquals(buf: Uint8Array, len: number, pos: number, wire: Uint8Array): boolean {
  let w = 0;
  let lowest = pos;
  for (let hops = 0; hops < 256; hops++) {
    if (pos >= len) return false;
    const b = buf[pos]!;
    if ((b & 0xc0) === 0xc0) {
      if (pos + 1 >= len) return false;
      const target = ((b & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= lowest) return false;
      lowest = target;
      pos = target;
      continue;
    }
    if ((b & 0xc0) !== 0 || pos + 1 + b > len || w + 1 + b > wire.length || wire[w] !== b) return false;
    if (b === 0) return w + 1 === wire.length;
    for (let i = 1; i <= b; i++) if (lowerByte(buf[pos + i]!) !== wire[w + i]) return false;
    w += 1 + b;
    pos += 1 + b;
  }
  return false;
}

function addrEquals(buf: Uint8Array, rd: number, rdlen: number, a16: Uint8Array): boolean {
  if (rdlen === 4) {
    for (let i = 0; i < 10; i++) if (a16[i] !== 0) return false;
    if (a16[10] !== 0xff || a16[11] !== 0xff) return false;
    for (let i = 0; i < 4; i++) if (buf[rd + i] !== a16[12 + i]) return false;
    return true;
  }
  if (rdlen !== 16) return false;
  for (let i = 0; i < 16; i++) if (buf[rd + i] !== a16[i]) return false;
  return true;
}
