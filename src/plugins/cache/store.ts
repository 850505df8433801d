/**
 * Bounded stores of cached responses, one for `success` and one for `denial` (CoreDNS keeps a
 * positive and a negative cache with separate capacities).
 *
 * Layout follows dnsdist's packet cache: an entry holds the response's wire bytes (OPT removed),
 * the offsets of every TTL field, and its key. The bytes live in the store's ByteArena and the
 * entry objects are pooled, so a full store inserts and evicts without allocating. Lookup is a
 * chained hash table on a 32-bit key hash; a hit compares the stored question bytes
 * case-insensitively, never a string.
 *
 * Capacity is a hard bound. When a store is full an insert evicts in O(1): it samples a few
 * random entries and drops the one that expires first (CoreDNS evicts a random item of a shard;
 * sampling prefers dead and stale entries over live ones at the same cost).
 */
import { Buffer } from 'node:buffer';
import { Flag, Header } from '../../wire/codes.ts';
import { messageFlags, setAdditionalCount, setU16, setU32, u16 } from '../../wire/header.ts';
import { equalBytesCI } from '../../wire/name.ts';
import { ByteArena, NO_CHUNK } from './arena.ts';

export const EntryKind = { SUCCESS: 0, DENIAL: 1 } as const;
export type EntryKindValue = (typeof EntryKind)[keyof typeof EntryKind];

/** Key bits besides name, type and class: DNSSEC OK and Checking Disabled of the query. */
export const KeyFlag = { DO: 1, CD: 2 } as const;

/** Placeholder buffer of an entry that holds no response (pooled). */
const NO_BYTES = Buffer.alloc(0);

/**
 * One cached response. Entry objects are pooled by their store: an evicted entry that nothing
 * holds is reused for a later insert, so a full cache allocates no objects and leaves no
 * old-generation garbage behind (see arena.ts).
 */
export class Entry {
  /** FNV-1a of the case-folded qname (Request.nameHash). */
  nameHash = 0;
  qtype = 0;
  qclass = 0;
  /** KeyFlag bits. */
  keyFlags = 0;
  /** Hash over the whole key, used for the bucket. */
  keyHash = 0;
  kind: EntryKindValue = EntryKind.SUCCESS;
  /**
   * The buffer holding the response: an arena slab shared with other entries, or the entry's
   * own buffer for a response above the arena's largest chunk. The response is
   * `buf[off, off + len)`: its bytes without OPT (ARCOUNT adjusted), the TTL fields holding
   * `ttlWrittenSec`. After it come `ttlCount` big-endian uint16s: the offsets of every record's
   * TTL field, relative to `off`.
   */
  buf: Buffer = NO_BYTES;
  off = 0;
  len = 0;
  ttlCount = 0;
  /** Arena chunk of the response, or NO_CHUNK when `buf` is the entry's own. */
  chunk = NO_CHUNK;
  /** Offset just past the question's qname (same as the query's: the question is uncompressed). */
  qnameEnd = 0;
  /** Header bits kept from the response: RA and the rcode (AD is kept separately). */
  baseFlags = 0;
  /** The response had AD set (RFC 4035 §3.2.3). */
  authenticData = false;
  /** ARCOUNT of the stored response (OPT excluded). */
  arcount = 0;
  /**
   * Clock reading when stored, whole ms. Entry time fields hold integers: V8 boxes a fractional
   * number field in a HeapNumber per entry.
   */
  storedMs = 0;
  /** The TTL (s) the entry was stored with: the clamped minimum record TTL (CoreDNS origTTL). */
  origTtlSec = 0;
  /** The value currently in every TTL field of the response; -1 before the first write. */
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
  /**
   * Writers in flight that will still read this entry (a stale verification, a refresh): while
   * any holds it, a removed entry keeps its bytes and is not reused.
   */
  holders = 0;
  /** Removed from its store while held: goes back to the pool when the last holder lets go. */
  orphaned = false;
  /** The store whose pool this entry returns to. */
  owner: EntryStore | null = null;

  /** Expiry time (ms): CoreDNS's item TTL reaches 0 here. */
  get expiresMs(): number {
    return this.storedMs + this.origTtlSec * 1000;
  }

  /** Writes `ttlSec` into every TTL field of the stored response (done at most once per value). */
  writeTtls(ttlSec: number): void {
    const b = this.buf;
    const base = this.off;
    let p = base + this.len;
    for (let i = 0; i < this.ttlCount; i++, p += 2) setU32(b, base + u16(b, p), ttlSec);
    this.ttlWrittenSec = ttlSec;
  }

  /** Offset (relative to `off`) of the i-th record's TTL field. */
  ttlOffset(i: number): number {
    const p = this.off + this.len + 2 * i;
    return u16(this.buf, p);
  }

  /** A writer in flight will read this entry later (see `holders`). */
  hold(): void {
    this.holders++;
  }

  /** The writer is done with this entry. */
  unhold(): void {
    if (this.holders > 0 && --this.holders === 0 && this.orphaned) this.owner?.recycle(this);
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

/** Buckets of a new store: a block's cache costs ~128 bytes of table until it holds entries. */
const MIN_BUCKETS = 16;
/**
 * Old buckets moved to the grown table per insert while a grow is in progress. The table
 * doubles when it holds as many entries as buckets, so the n old buckets are drained within
 * n/2 inserts, well before the next grow; each insert relinks a few entries instead of one
 * insert relinking them all (a 3-6 ms event-loop stall at 8,000 entries when it was done in
 * one go).
 */
const MIGRATE_BUCKETS_PER_INSERT = 2;
/** Random entries looked at when choosing a victim. */
const EVICTION_SAMPLES = 4;

export class EntryStore {
  /** Hard bound on the number of entries. */
  readonly capacity: number;
  private buckets: (Entry | null)[];
  private mask: number;
  /**
   * Incremental growth: the previous, half-size table while its entries move to `buckets`
   * (null when no grow is in progress). Buckets below `migrated` are empty. A key lives in
   * exactly one of the two tables.
   */
  private oldBuckets: (Entry | null)[] | null = null;
  private oldMask = 0;
  private migrated = 0;
  /** Most entries relinked by one insert (tests: growth costs each insert little). */
  maxRelinkedPerInsert = 0;
  /** Dense array of live entries (slot i holds an entry with .slot === i) for random eviction. */
  private slots: Entry[] = [];
  /** Random state for victim selection (xorshift32; nothing here needs real randomness). */
  private rnd = 0x2545f491;
  /** Where the responses' bytes live; made by the first fill (an unused store holds none). */
  private arena: ByteArena | null = null;
  /** Entries removed and no longer held, ready for reuse (at most `capacity`). */
  private readonly pool: Entry[] = [];

  constructor(capacity: number) {
    this.capacity = Math.max(1, Math.floor(capacity));
    this.buckets = new Array<Entry | null>(MIN_BUCKETS).fill(null);
    this.mask = MIN_BUCKETS - 1;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Entry objects waiting in the pool (tests). */
  get pooled(): number {
    return this.pool.length;
  }

  /** Arena chunks holding responses (tests: nothing leaks). */
  get chunksInUse(): number {
    return this.arena === null ? 0 : this.arena.chunksInUse;
  }

  /**
   * An entry for `fill` and `insert`: a pooled one when there is one. Until inserted it
   * belongs to the caller.
   */
  acquire(): Entry {
    const e = this.pool.pop() ?? new Entry();
    e.owner = this;
    return e;
  }

  /**
   * Sets an acquired entry's key and copies the response `msg[0, len)` into the store's arena,
   * with ARCOUNT set to `arcount` and the TTL field offsets after it. `ttlOffsets` are offsets
   * into msg, each below len.
   */
  fill(
    e: Entry,
    nameHash: number,
    qtype: number,
    qclass: number,
    keyFlags: number,
    kind: EntryKindValue,
    qnameEnd: number,
    storedMs: number,
    origTtlSec: number,
    msg: Buffer,
    len: number,
    arcount: number,
    ttlOffsets: readonly number[],
  ): void {
    const arena = this.arena ?? (this.arena = new ByteArena());
    if (e.chunk !== NO_CHUNK) arena.free(e.chunk);
    const ttlCount = ttlOffsets.length;
    const need = len + 2 * ttlCount;
    const chunk = arena.alloc(need);
    let buf: Buffer;
    let off: number;
    if (chunk === NO_CHUNK) {
      buf = Buffer.allocUnsafeSlow(need);
      off = 0;
    } else {
      buf = arena.slab(chunk);
      off = arena.offset(chunk);
    }
    msg.copy(buf, off, 0, len);
    setAdditionalCount(buf, arcount, off);
    let p = off + len;
    for (let i = 0; i < ttlCount; i++, p += 2) setU16(buf, p, ttlOffsets[i]!);
    e.nameHash = nameHash;
    e.qtype = qtype;
    e.qclass = qclass;
    e.keyFlags = keyFlags;
    e.keyHash = keyHash(nameHash, qtype, qclass, keyFlags);
    e.kind = kind;
    e.buf = buf;
    e.off = off;
    e.len = len;
    e.ttlCount = ttlCount;
    e.chunk = chunk;
    e.qnameEnd = qnameEnd;
    const flags = messageFlags(msg);
    e.baseFlags = flags & (Flag.RA | Flag.RCODE_MASK);
    e.authenticData = (flags & Flag.AD) !== 0;
    e.arcount = arcount;
    e.storedMs = Math.floor(storedMs);
    e.origTtlSec = origTtlSec;
    e.ttlWrittenSec = -1;
    e.freqHits = 0;
    e.freqLastMs = 0;
    e.refreshSinceMs = -1;
    e.failedAtMs = -1;
    e.holders = 0;
    e.orphaned = false;
  }

  /**
   * Returns a removed entry whose last holder let go: its chunk to the arena, the object to the
   * pool. Called by remove() and Entry.unhold().
   */
  recycle(e: Entry): void {
    if (e.slot >= 0 || e.holders > 0) return;
    if (e.chunk !== NO_CHUNK) this.arena!.free(e.chunk);
    e.chunk = NO_CHUNK;
    e.buf = NO_BYTES;
    e.len = 0;
    e.ttlCount = 0;
    e.orphaned = false;
    if (this.pool.length < this.capacity) this.pool.push(e);
  }

  /** Length of the current bucket array (tests: growth). */
  get bucketCount(): number {
    return this.buckets.length;
  }

  /**
   * The entry for a query's key, or null. `msg[msgOff + 12, msgOff + qnameEnd)` is the query's
   * qname; it must equal the stored one case-insensitively (the hash alone is never trusted).
   */
  find(msg: Uint8Array, qnameEnd: number, nameHash: number, qtype: number, qclass: number, keyFlags: number, hash: number, msgOff = 0): Entry | null {
    const found = this.findIn(this.buckets[hash & this.mask]!, msg, qnameEnd, nameHash, qtype, qclass, keyFlags, hash, msgOff);
    if (found !== null || this.oldBuckets === null) return found;
    return this.findIn(this.oldBuckets[hash & this.oldMask]!, msg, qnameEnd, nameHash, qtype, qclass, keyFlags, hash, msgOff);
  }

  private findIn(
    head: Entry | null,
    msg: Uint8Array,
    qnameEnd: number,
    nameHash: number,
    qtype: number,
    qclass: number,
    keyFlags: number,
    hash: number,
    msgOff: number,
  ): Entry | null {
    let e: Entry | null = head;
    while (e !== null) {
      if (
        e.keyHash === hash &&
        e.nameHash === nameHash &&
        e.qtype === qtype &&
        e.qclass === qclass &&
        e.keyFlags === keyFlags &&
        e.qnameEnd === qnameEnd &&
        equalBytesCI(msg, msgOff + Header.SIZE, e.buf, e.off + Header.SIZE, qnameEnd - Header.SIZE)
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
    const old = this.find(entry.buf, entry.qnameEnd, entry.nameHash, entry.qtype, entry.qclass, entry.keyFlags, entry.keyHash, entry.off);
    let evicted = false;
    if (old !== null) {
      this.remove(old);
    } else if (this.slots.length >= this.capacity) {
      this.remove(this.victim());
      evicted = true;
    }
    if (this.oldBuckets !== null) this.migrate(MIGRATE_BUCKETS_PER_INSERT);
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
    if (!unlink(this.buckets, entry.keyHash & this.mask, entry)) {
      if (this.oldBuckets === null || !unlink(this.oldBuckets, entry.keyHash & this.oldMask, entry)) return false;
    }
    const last = this.slots.pop()!;
    if (last !== entry) {
      this.slots[slot] = last;
      last.slot = slot;
    }
    entry.chain = null;
    entry.slot = -1;
    this.retire(entry);
    return true;
  }

  /** Removes every entry. */
  clear(): void {
    this.buckets.fill(null);
    this.oldBuckets = null;
    const all = this.slots;
    this.slots = [];
    for (const e of all) {
      e.slot = -1;
      e.chain = null;
      this.retire(e);
    }
  }

  /** An entry just unlinked: back to the pool now, or when its last holder lets go. */
  private retire(e: Entry): void {
    if (e.holders > 0) e.orphaned = true;
    else this.recycle(e);
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

  /**
   * Doubles the bucket array (load factor stays <= 1). The entries move over in later inserts
   * (migrate); a grow still in progress is finished first (not reached: see
   * MIGRATE_BUCKETS_PER_INSERT).
   */
  private grow(): void {
    if (this.oldBuckets !== null) this.migrate(this.oldBuckets.length);
    const n = this.buckets.length * 2;
    this.oldBuckets = this.buckets;
    this.oldMask = this.mask;
    this.migrated = 0;
    this.buckets = new Array<Entry | null>(n).fill(null);
    this.mask = n - 1;
  }

  /** Moves the entries of up to `count` old buckets to the current table. */
  private migrate(count: number): void {
    const old = this.oldBuckets!;
    let relinked = 0;
    const end = Math.min(old.length, this.migrated + count);
    for (let i = this.migrated; i < end; i++) {
      let e: Entry | null = old[i]!;
      old[i] = null;
      while (e !== null) {
        const next: Entry | null = e.chain;
        const b = e.keyHash & this.mask;
        e.chain = this.buckets[b]!;
        this.buckets[b] = e;
        relinked++;
        e = next;
      }
    }
    this.migrated = end;
    if (end === old.length) this.oldBuckets = null;
    if (relinked > this.maxRelinkedPerInsert) this.maxRelinkedPerInsert = relinked;
  }
}

/** Unlinks `entry` from the chain of bucket b; false when it is not there. */
function unlink(buckets: (Entry | null)[], b: number, entry: Entry): boolean {
  let prev: Entry | null = null;
  let e: Entry | null = buckets[b]!;
  while (e !== null && e !== entry) {
    prev = e;
    e = e.chain;
  }
  if (e === null) return false;
  if (prev === null) buckets[b] = entry.chain;
  else prev.chain = entry.chain;
  return true;
}
