/**
 * Bounded stores of cached responses, one for `success` and one for `denial` (CoreDNS keeps a
 * positive and a negative cache with separate capacities).
 *
 * Layout follows dnsdist's packet cache: an entry holds the response's wire bytes (OPT removed),
 * the offsets of every TTL field, and its key. Lookup is a chained hash table on a 32-bit key
 * hash; a hit compares the stored question bytes case-insensitively, never a string.
 *
 * Capacity is a hard bound. When a store is full an insert evicts in O(1): it samples a few
 * random entries and drops the one that expires first (CoreDNS evicts a random item of a shard;
 * sampling prefers dead and stale entries over live ones at the same cost).
 */
import { Header } from '../../wire/codes.ts';
import { equalBytesCI } from '../../wire/name.ts';

export const EntryKind = { SUCCESS: 0, DENIAL: 1 } as const;
export type EntryKindValue = (typeof EntryKind)[keyof typeof EntryKind];

/** Key bits besides name, type and class: DNSSEC OK and Checking Disabled of the query. */
export const KeyFlag = { DO: 1, CD: 2 } as const;

/** One cached response. Immutable once stored except for the TTL bytes and bookkeeping. */
export class Entry {
  /** FNV-1a of the case-folded qname (Request.nameHash). */
  nameHash: number;
  qtype: number;
  qclass: number;
  /** KeyFlag bits. */
  keyFlags: number;
  /** Hash over the whole key, used for the bucket. */
  keyHash: number;
  kind: EntryKindValue;
  /** Response bytes without OPT (ARCOUNT adjusted); the TTL fields hold `ttlWrittenSec`. */
  bytes: Buffer;
  /** Offset just past the question's qname (same as the query's: the question is uncompressed). */
  qnameEnd: number;
  /**
   * Offsets of every record's TTL field in `bytes`. A plain array of small integers (~64 bytes
   * for two records) rather than a Uint16Array (~230 bytes with its buffer object): every
   * cached entry survives a young-generation GC or two, and its size is what those copy.
   */
  ttlOffsets: readonly number[];
  /** Header bits kept from the response: RA and the rcode (AD is kept separately). */
  baseFlags: number;
  /** The response had AD set (RFC 4035 §3.2.3). */
  authenticData: boolean;
  /** ARCOUNT of `bytes` (OPT excluded). */
  arcount: number;
  /**
   * Clock reading when stored, whole ms. Entry time fields hold integers: V8 boxes a fractional
   * number field in a HeapNumber per entry, which the young-generation GC must then copy.
   */
  storedMs: number;
  /** The TTL (s) the entry was stored with: the clamped minimum record TTL (CoreDNS origTTL). */
  origTtlSec: number;
  /** The value currently in every TTL field of `bytes`; -1 before the first write. */
  ttlWrittenSec = -1;
  /** Prefetch popularity (CoreDNS freq.Freq): hits within the prefetch window and the last hit. */
  freqHits = 0;
  freqLastMs = 0;
  /** Clock reading when a background refresh was issued, or -1 when none is in flight. */
  refreshSinceMs = -1;
  /** Clock reading of the last failed upstream verification (stale fallback), or -1. */
  failedAtMs = -1;

  /** Chain link in the hash bucket, and the position in the store's dense slot array. */
  chain: Entry | null = null;
  slot = -1;

  constructor(
    nameHash: number,
    qtype: number,
    qclass: number,
    keyFlags: number,
    kind: EntryKindValue,
    bytes: Buffer,
    qnameEnd: number,
    ttlOffsets: readonly number[],
    storedMs: number,
    origTtlSec: number,
  ) {
    this.nameHash = nameHash;
    this.qtype = qtype;
    this.qclass = qclass;
    this.keyFlags = keyFlags;
    this.keyHash = keyHash(nameHash, qtype, qclass, keyFlags);
    this.kind = kind;
    this.bytes = bytes;
    this.qnameEnd = qnameEnd;
    this.ttlOffsets = ttlOffsets;
    const flags = (bytes[2]! << 8) | bytes[3]!;
    this.baseFlags = flags & 0x008f;
    this.authenticData = (flags & 0x0020) !== 0;
    this.arcount = (bytes[10]! << 8) | bytes[11]!;
    this.storedMs = Math.floor(storedMs);
    this.origTtlSec = origTtlSec;
  }

  /** Expiry time (ms): CoreDNS's item TTL reaches 0 here. */
  get expiresMs(): number {
    return this.storedMs + this.origTtlSec * 1000;
  }

  /** Writes `ttlSec` into every TTL field of the stored bytes (done at most once per value). */
  writeTtls(ttlSec: number): void {
    const b = this.bytes;
    const offs = this.ttlOffsets;
    const b0 = ttlSec >>> 24;
    const b1 = (ttlSec >>> 16) & 0xff;
    const b2 = (ttlSec >>> 8) & 0xff;
    const b3 = ttlSec & 0xff;
    for (let i = 0; i < offs.length; i++) {
      const o = offs[i]!;
      b[o] = b0;
      b[o + 1] = b1;
      b[o + 2] = b2;
      b[o + 3] = b3;
    }
    this.ttlWrittenSec = ttlSec;
  }
}

/**
 * Mixes the name hash with type, class and key flags (murmur3 finaliser). Signed 32-bit, like
 * Request.nameHash: V8 keeps such values in entry fields unboxed (no HeapNumber per entry).
 */
export function keyHash(nameHash: number, qtype: number, qclass: number, keyFlags: number): number {
  let h = nameHash ^ Math.imul(qtype ^ (qclass << 16), 0x9e3779b1) ^ Math.imul(keyFlags + 1, 0x85ebca6b);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h | 0;
}

const MIN_BUCKETS = 64;
/**
 * Stores up to this capacity get all their buckets up front. Growing relinks every entry in one
 * go, a 3-6 ms stall of the event loop at 8,000 entries that showed up in the p99 latency while
 * the cache filled; one pointer per bucket (at most 512 KiB per store here) is cheaper.
 */
const PREALLOCATED_BUCKETS_MAX = 1 << 17;
/** Random entries looked at when choosing a victim. */
const EVICTION_SAMPLES = 4;

export class EntryStore {
  /** Hard bound on the number of entries. */
  readonly capacity: number;
  private buckets: (Entry | null)[];
  private mask: number;
  /** Dense array of live entries (slot i holds an entry with .slot === i) for random eviction. */
  private slots: Entry[] = [];
  /** Random state for victim selection (xorshift32; nothing here needs real randomness). */
  private rnd = 0x2545f491;

  constructor(capacity: number) {
    this.capacity = Math.max(1, Math.floor(capacity));
    let n = MIN_BUCKETS;
    while (n < this.capacity && n < PREALLOCATED_BUCKETS_MAX) n <<= 1;
    this.buckets = new Array<Entry | null>(n).fill(null);
    this.mask = n - 1;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Length of the bucket array (tests: whether the table had to grow). */
  get bucketCount(): number {
    return this.buckets.length;
  }

  /**
   * The entry for a query's key, or null. `msg[12..qnameEnd)` is the query's qname; it must
   * equal the stored one case-insensitively (the hash alone is never trusted).
   */
  find(msg: Uint8Array, qnameEnd: number, nameHash: number, qtype: number, qclass: number, keyFlags: number, hash: number): Entry | null {
    let e: Entry | null = this.buckets[hash & this.mask]!;
    while (e !== null) {
      if (
        e.keyHash === hash &&
        e.nameHash === nameHash &&
        e.qtype === qtype &&
        e.qclass === qclass &&
        e.keyFlags === keyFlags &&
        e.qnameEnd === qnameEnd &&
        equalBytesCI(msg, Header.SIZE, e.bytes, Header.SIZE, qnameEnd - Header.SIZE)
      ) {
        return e;
      }
      e = e.chain;
    }
    return null;
  }

  /**
   * Stores `entry`, replacing an entry with the same key. Returns true when another entry had
   * to be evicted to make room.
   */
  insert(entry: Entry): boolean {
    const old = this.find(entry.bytes, entry.qnameEnd, entry.nameHash, entry.qtype, entry.qclass, entry.keyFlags, entry.keyHash);
    let evicted = false;
    if (old !== null) {
      this.remove(old);
    } else if (this.slots.length >= this.capacity) {
      this.remove(this.victim());
      evicted = true;
    }
    if (this.slots.length >= this.buckets.length) this.grow();
    const b = entry.keyHash & this.mask;
    entry.chain = this.buckets[b]!;
    this.buckets[b] = entry;
    entry.slot = this.slots.length;
    this.slots.push(entry);
    return evicted;
  }

  /** Removes `entry` if it is stored here. */
  remove(entry: Entry): boolean {
    const slot = entry.slot;
    if (slot < 0 || this.slots[slot] !== entry) return false;
    const b = entry.keyHash & this.mask;
    let prev: Entry | null = null;
    let e: Entry | null = this.buckets[b]!;
    while (e !== null && e !== entry) {
      prev = e;
      e = e.chain;
    }
    if (e === null) return false;
    if (prev === null) this.buckets[b] = entry.chain;
    else prev.chain = entry.chain;
    const last = this.slots.pop()!;
    if (last !== entry) {
      this.slots[slot] = last;
      last.slot = slot;
    }
    entry.chain = null;
    entry.slot = -1;
    return true;
  }

  /** Removes every entry. */
  clear(): void {
    this.buckets.fill(null);
    for (const e of this.slots) {
      e.slot = -1;
      e.chain = null;
    }
    this.slots = [];
  }

  /** Visits every entry (tests, debugging). */
  forEach(fn: (e: Entry) => void): void {
    for (const e of this.slots) fn(e);
  }

  private random(): number {
    let x = this.rnd;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.rnd = x;
    return x >>> 0;
  }

  private victim(): Entry {
    const n = this.slots.length;
    let best = this.slots[this.random() % n]!;
    for (let i = 1; i < EVICTION_SAMPLES; i++) {
      const e = this.slots[this.random() % n]!;
      if (e.expiresMs < best.expiresMs) best = e;
    }
    return best;
  }

  /** Doubles the bucket array (load factor stays <= 1) and relinks every entry. */
  private grow(): void {
    const n = this.buckets.length * 2;
    this.buckets = new Array<Entry | null>(n).fill(null);
    this.mask = n - 1;
    for (const e of this.slots) {
      const b = e.keyHash & this.mask;
      e.chain = this.buckets[b]!;
      this.buckets[b] = e;
    }
  }
}
