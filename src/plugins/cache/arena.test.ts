import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteArena, MAX_CHUNK_BYTES, NO_CHUNK, SLAB_BYTES } from './arena.ts';

test('chunks never overlap and keep their bytes until freed, under random alloc/free', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: MAX_CHUNK_BYTES }), fc.nat()), { maxLength: 300 }), (ops) => {
      const arena = new ByteArena();
      const live: { h: number; n: number; fill: number }[] = [];
      let stamp = 0;
      for (const [alloc, n, pick] of ops) {
        if (alloc || live.length === 0) {
          const h = arena.alloc(n);
          assert.notEqual(h, NO_CHUNK);
          const size = arena.chunkBytes(h);
          assert.ok(size >= n && (size === 64 || size < 2 * n), `${size}-byte chunk for ${n}`);
          assert.ok(arena.offset(h) + size <= arena.slab(h).length && arena.slab(h).length <= SLAB_BYTES);
          const fill = (stamp++ % 251) + 1;
          arena.slab(h).fill(fill, arena.offset(h), arena.offset(h) + n);
          live.push({ h, n, fill });
        } else {
          const [gone] = live.splice(pick % live.length, 1);
          arena.free(gone!.h);
        }
        assert.equal(arena.chunksInUse, live.length);
      }
      for (const { h, n, fill } of live) {
        const b = arena.slab(h);
        const off = arena.offset(h);
        for (let i = 0; i < n; i++) assert.equal(b[off + i], fill, `chunk ${h} byte ${i}`);
      }
    }),
    { numRuns: 200 },
  );
});

test('a freed chunk is handed out again: steady alloc/free cycles reserve no more slabs', () => {
  const arena = new ByteArena();
  const held: number[] = [];
  for (let i = 0; i < 1000; i++) held.push(arena.alloc(100 + (i % 50)));
  const reserved = arena.reservedBytes;
  for (let round = 0; round < 50; round++) {
    for (let i = 0; i < held.length; i += 2) {
      arena.free(held[i]!);
      held[i] = arena.alloc(90 + (round % 30));
    }
  }
  assert.equal(arena.reservedBytes, reserved);
  assert.equal(arena.chunksInUse, 1000);
});

test('sizes above the largest chunk get NO_CHUNK; each size class takes its own slabs, growing from a small first one', () => {
  const arena = new ByteArena();
  assert.equal(arena.alloc(MAX_CHUNK_BYTES + 1), NO_CHUNK);
  assert.equal(arena.alloc(65_535), NO_CHUNK);
  assert.equal(arena.chunksInUse, 0);
  assert.equal(arena.reservedBytes, 0);
  const small = arena.alloc(1);
  const big = arena.alloc(MAX_CHUNK_BYTES);
  assert.equal(arena.chunkBytes(small), 64);
  assert.equal(arena.chunkBytes(big), MAX_CHUNK_BYTES);
  assert.notEqual(arena.slab(small), arena.slab(big));
  // First slabs: 1 KiB for 64-byte chunks, 4 chunks (16 KiB) for 4 KiB chunks.
  assert.equal(arena.slab(small).length, 1024);
  assert.equal(arena.slab(big).length, 4 * MAX_CHUNK_BYTES);
  assert.equal(arena.reservedBytes, 1024 + 4 * MAX_CHUNK_BYTES);
  // Each further slab of a class doubles, up to SLAB_BYTES; chunks never straddle slabs.
  const sizes: number[] = [];
  let last = arena.slab(small);
  for (let i = 1; i < 4000; i++) {
    const h = arena.alloc(64);
    const s = arena.slab(h);
    if (s !== last) sizes.push(s.length);
    last = s;
  }
  assert.deepEqual(sizes, [2048, 4096, 8192, 16384, 32768, 65536, 65536, 65536]);
});

test('one response in each size class reserves a few KiB, not a 64 KiB slab per class', () => {
  const arena = new ByteArena();
  for (let n = 64; n <= MAX_CHUNK_BYTES; n *= 2) arena.alloc(n);
  // 64 B..256 B classes: 1 KiB each; 512 B: 2 KiB; 1, 2, 4 KiB: 4 chunks each.
  assert.equal(arena.reservedBytes, 3 * 1024 + 2048 + 4 * (1024 + 2048 + 4096));
});
