import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeName } from '../../wire/name.ts';
import { Entry, EntryKind, EntryStore, keyHash } from './store.ts';

/** A minimal stored message: header + question for `name` (type A, class IN). */
function entryFor(name: string, nameHash: number, expiresInSec: number): Entry {
  const qname = encodeName(name);
  const bytes = Buffer.alloc(12 + qname.length + 4);
  bytes[5] = 1;
  qname.copy(bytes, 12);
  bytes.writeUInt16BE(1, 12 + qname.length);
  bytes.writeUInt16BE(1, 14 + qname.length);
  return new Entry(nameHash, 1, 1, 0, EntryKind.SUCCESS, bytes, 12 + qname.length, [], 0, expiresInSec);
}

function lookup(store: EntryStore, name: string, nameHash: number): Entry | null {
  const msg = Buffer.alloc(12 + 300);
  const q = encodeName(name.toUpperCase());
  q.copy(msg, 12);
  return store.find(msg, 12 + q.length, nameHash, 1, 1, 0, keyHash(nameHash, 1, 1, 0));
}

test('store agrees with a Map model under random inserts and removals, within capacity', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 200 })), { maxLength: 400 }),
      fc.integer({ min: 1, max: 64 }),
      (ops, capacity) => {
        const store = new EntryStore(capacity);
        const model = new Map<number, Entry>();
        for (const [insert, k] of ops) {
          // Deliberately colliding name hashes (k % 7): the byte compare must tell names apart.
          const name = `n${k}.example`;
          if (insert) {
            const e = entryFor(name, k % 7, 100);
            const evicted = store.insert(e);
            if (model.has(k)) assert.equal(evicted, false);
            model.set(k, e);
            if (evicted) {
              for (const [mk, me] of model) if (me.slot < 0) model.delete(mk);
            }
          } else {
            const e = lookup(store, name, k % 7);
            assert.equal(e, model.get(k) ?? null);
            if (e !== null) {
              assert.equal(store.remove(e), true);
              model.delete(k);
            }
          }
          assert.ok(store.size <= capacity);
          assert.equal(store.size, model.size);
        }
        for (const [k, e] of model) assert.equal(lookup(store, `n${k}.example`, k % 7), e);
      },
    ),
    { numRuns: 200 },
  );
});

test('clear empties the store and entries can be stored again', () => {
  const store = new EntryStore(10);
  for (let i = 0; i < 10; i++) store.insert(entryFor(`c${i}.example`, i, 10));
  assert.equal(store.size, 10);
  store.clear();
  assert.equal(store.size, 0);
  assert.equal(lookup(store, 'c1.example', 1), null);
  store.insert(entryFor('c1.example', 1, 10));
  assert.notEqual(lookup(store, 'c1.example', 1), null);
});

test('a store of the default size never regrows its table while it fills (no relink stall)', () => {
  const store = new EntryStore(10_000);
  const buckets = store.bucketCount;
  assert.ok(buckets >= 10_000, `${buckets} buckets for 10,000 entries`);
  for (let i = 0; i < 12_000; i++) store.insert(entryFor(`g${i}.example`, i * 2654435761, 10));
  assert.equal(store.size, 10_000);
  assert.equal(store.bucketCount, buckets);
  assert.notEqual(lookup(store, 'g11999.example', 11999 * 2654435761), null);
});

test('a store above the preallocation bound still grows and finds every entry', () => {
  const store = new EntryStore(300_000);
  const before = store.bucketCount;
  const n = before + 10;
  for (let i = 0; i < n; i++) store.insert(entryFor(`h${i}.example`, i, 10));
  assert.ok(store.bucketCount > before);
  for (const i of [0, 1, before, n - 1]) assert.notEqual(lookup(store, `h${i}.example`, i), null, `h${i}`);
});
