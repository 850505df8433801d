import test from 'node:test';
import assert from 'node:assert/strict';
import { freeId, randomId } from './ids.ts';

test('randomId: 16-bit values, not a constant sequence', () => {
  const seen = new Set<number>();
  for (let i = 0; i < 10_000; i++) {
    const id = randomId();
    assert.ok(Number.isInteger(id) && id >= 0 && id <= 0xffff);
    seen.add(id);
  }
  // 10,000 uniform draws from 65,536 values give ~9,300 distinct ones.
  assert.ok(seen.size > 8_500, `only ${seen.size} distinct IDs`);
});

test('freeId: never an ID in use; the last free one is found; -1 when all are taken', () => {
  const inUse = new Map<number, true>();
  for (let i = 0; i < 1000; i++) {
    const id = freeId(inUse);
    assert.ok(id >= 0 && !inUse.has(id));
    inUse.set(id, true);
  }
  const full = new Map<number, true>();
  for (let id = 0; id <= 0xffff; id++) if (id !== 12345) full.set(id, true);
  assert.equal(freeId(full), 12345);
  full.set(12345, true);
  assert.equal(freeId(full), -1);
});
