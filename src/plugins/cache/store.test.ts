import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeName } from '../../wire/name.ts';
import { type Entry, EntryKind, EntryStore, keyHash } from './store.ts';

/** A minimal stored message: header + question for `name` (type A, class IN). */
function messageFor(name: string): Buffer {
  const qname = encodeName(name);
  const bytes = Buffer.alloc(12 + qname.length + 4);
  bytes[5] = 1;
  qname.copy(bytes, 12);
  bytes.writeUInt16BE(1, 12 + qname.length);
  bytes.writeUInt16BE(1, 14 + qname.length);
  return bytes;
}

/** An entry of `store` (acquired and filled, not inserted) for `name`. */
function entryFor(store: EntryStore, name: string, nameHash: number, expiresInSec: number): Entry {
  const bytes = messageFor(name);
  const e = store.acquire();
  store.fill(e, nameHash, 1, 1, 0, EntryKind.SUCCESS, bytes.length - 4, 0, expiresInSec, bytes, bytes.length, 0, []);
  return e;
}

function lookup(store: EntryStore, name: string, nameHash: number): Entry | null {
  const msg = Buffer.alloc(12 + 300);
  const q = encodeName(name.toUpperCase());
  q.copy(msg, 12);
  return store.find(msg, 12 + q.length, nameHash, 1, 1, 0, keyHash(nameHash, 1, 1, 0));
}

function hashOf(k: number): number {
  return k % 3 === 0 ? k % 7 : Math.imul(k, 0x9e3779b1);
}

test('store agrees with a Map model under random inserts and removals, within capacity', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 600 })), { maxLength: 1200 }), fc.integer({ min: 1, max: 400 }), (ops, capacity) => {
      const store = new EntryStore(capacity);
      const model = new Map<number, Entry>();
      for (const [insert, k] of ops) {
        // Deliberately colliding name hashes (k % 7) for a third of the names: the byte compare
        // must tell names apart; the others spread over the table as it grows.
        const name = `n${k}.example`;
        if (insert) {
          const e = entryFor(store, name, hashOf(k), 100);
          const evicted = store.insert(e);
          if (model.has(k)) assert.equal(evicted, false);
          model.set(k, e);
          if (evicted) {
            for (const [mk, me] of model) if (me.slot < 0) model.delete(mk);
          }
        } else {
          const e = lookup(store, name, hashOf(k));
          assert.equal(e, model.get(k) ?? null);
          if (e !== null) {
            assert.equal(store.remove(e), true);
            model.delete(k);
          }
        }
        assert.ok(store.size <= capacity);
        assert.equal(store.size, model.size);
      }
      for (const [k, e] of model) assert.equal(lookup(store, `n${k}.example`, hashOf(k)), e);
    }),
    { numRuns: 200 },
  );
});

test('clear empties the store and entries can be stored again', () => {
  const store = new EntryStore(10);
  for (let i = 0; i < 10; i++) store.insert(entryFor(store, `c${i}.example`, i, 10));
  assert.equal(store.size, 10);
  store.clear();
  assert.equal(store.size, 0);
  assert.equal(lookup(store, 'c1.example', 1), null);
  store.insert(entryFor(store, 'c1.example', 1, 10));
  assert.notEqual(lookup(store, 'c1.example', 1), null);
});

test('a new store reserves a small table and grows it a few entries per insert (no relink stall, no up-front reservation)', () => {
  const store = new EntryStore(10_000);
  assert.ok(store.bucketCount <= 16, `${store.bucketCount} buckets before any entry`);
  for (let i = 0; i < 12_000; i++) {
    store.insert(entryFor(store, `g${i}.example`, Math.imul(i, 0x9e3779b1), 10));
    // Every entry stays findable while buckets move from the old table to the new one.
    if (i % 997 === 0)
      for (let j = Math.max(0, i - 50); j <= i; j++) assert.notEqual(lookup(store, `g${j}.example`, Math.imul(j, 0x9e3779b1)), null, `g${j} at ${i}`);
  }
  assert.equal(store.size, 10_000);
  assert.ok(store.bucketCount >= 8_192, `${store.bucketCount} buckets for 10,000 entries`);
  assert.ok(store.maxRelinkedPerInsert <= 64, `${store.maxRelinkedPerInsert} entries relinked by one insert`);
  assert.notEqual(lookup(store, 'g11999.example', Math.imul(11999, 0x9e3779b1)), null);
});

test('a large store grows past 2^17 buckets and finds every entry', () => {
  const store = new EntryStore(300_000);
  const n = (1 << 17) + 10;
  for (let i = 0; i < n; i++) store.insert(entryFor(store, `h${i}.example`, i, 10));
  assert.ok(store.bucketCount > 1 << 17);
  for (const i of [0, 1, 1 << 17, n - 1]) assert.notEqual(lookup(store, `h${i}.example`, i), null, `h${i}`);
  assert.ok(store.maxRelinkedPerInsert <= 64, `${store.maxRelinkedPerInsert} entries relinked by one insert`);
});

test('a full store evicts and inserts with pooled entries and arena chunks: nothing new, nothing leaked', () => {
  const capacity = 100;
  const store = new EntryStore(capacity);
  const objects = new Set<Entry>();
  for (let i = 0; i < 2_000; i++) {
    const e = entryFor(store, `p${i}.example`, i, 10 + (i % 17));
    objects.add(e);
    store.insert(e);
    assert.ok(store.size <= capacity);
    assert.equal(store.chunksInUse, store.size);
  }
  // One object per slot, plus the one acquired before an insert evicts.
  assert.ok(objects.size <= capacity + 1, `${objects.size} entry objects for ${capacity} slots`);
  assert.ok(store.pooled <= 1);
  for (let i = 1_900; i < 2_000; i++) {
    const e = lookup(store, `p${i}.example`, i);
    if (e !== null) assert.equal(e.buf.toString('latin1', e.off + 13, e.off + 13 + `p${i}`.length), `p${i}`);
  }
  store.clear();
  assert.equal(store.size, 0);
  assert.equal(store.chunksInUse, 0);
  assert.equal(store.pooled, Math.min(capacity, objects.size));
});

test('a removed entry that is held keeps its bytes until the last holder lets go, then is reused', () => {
  const store = new EntryStore(10);
  const held = entryFor(store, 'held.example', 1, 10);
  store.insert(held);
  held.hold();
  held.hold();
  assert.equal(store.remove(held), true);
  assert.equal(held.orphaned, true);
  // Other entries come and go: none may take the held entry's chunk or object.
  for (let i = 0; i < 50; i++) store.insert(entryFor(store, `o${i}.example`, 100 + i, 10));
  assert.equal(held.buf.toString('latin1', held.off + 13, held.off + 17), 'held');
  assert.equal(store.chunksInUse, store.size + 1);
  held.unhold();
  assert.equal(store.chunksInUse, store.size + 1, 'still one holder');
  const pooled = store.pooled;
  held.unhold();
  assert.equal(store.chunksInUse, store.size);
  assert.equal(store.pooled, pooled + 1);
  assert.equal(held.orphaned, false);
  // Extra releases are ignored (a writer gives its hold back at most once, but be safe).
  held.unhold();
  assert.equal(held.holders, 0);
  assert.equal(store.pooled, pooled + 1);
  assert.equal(store.acquire(), held);
});

test('a response above the largest arena chunk gets a buffer of its own, freed with nothing to return', () => {
  const store = new EntryStore(4);
  const big = Buffer.alloc(6_000, 0x61);
  const head = messageFor('big.example');
  head.copy(big, 0);
  const e = store.acquire();
  store.fill(e, 7, 1, 1, 0, EntryKind.SUCCESS, head.length - 4, 0, 30, big, big.length, 0, [100, 5_000]);
  store.insert(e);
  assert.equal(store.chunksInUse, 0);
  assert.equal(e.buf.length, 6_000 + 4);
  assert.equal(e.ttlOffset(0), 100);
  assert.equal(e.ttlOffset(1), 5_000);
  e.writeTtls(0x01020304);
  assert.deepEqual([...e.buf.subarray(5_000, 5_004)], [1, 2, 3, 4]);
  assert.equal(store.remove(e), true);
  assert.equal(store.chunksInUse, 0);
});
