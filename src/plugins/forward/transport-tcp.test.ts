import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameReader } from './transport-tcp.ts';
import { TimeoutQueue, type TimeoutNode } from './timeouts.ts';
import { RandomPolicy, RoundRobinPolicy, SequentialPolicy } from './policy.ts';

function framed(msgs: Buffer[]): Buffer {
  return Buffer.concat(
    msgs.flatMap((m) => {
      const l = Buffer.alloc(2);
      l.writeUInt16BE(m.length);
      return [l, m];
    }),
  );
}

test('FrameReader: frames split anywhere (even inside the length prefix) and batched come out whole and in order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 12, maxLength: 600 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }),
      (msgs, cuts) => {
        const stream = framed(msgs.map((m) => Buffer.from(m)));
        const got: Buffer[] = [];
        const r = new FrameReader((f) => got.push(f));
        let off = 0;
        let i = 0;
        while (off < stream.length) {
          const n = cuts[i++ % cuts.length]!;
          assert.equal(r.push(stream.subarray(off, off + n)), true);
          off += n;
        }
        assert.equal(got.length, msgs.length);
        got.forEach((g, k) => assert.deepEqual(new Uint8Array(g), msgs[k]));
        assert.equal(r.idle, true);
      },
    ),
  );
});

test('FrameReader: delivered frames are copies (the chunk can be reused)', () => {
  const got: Buffer[] = [];
  const r = new FrameReader((f) => got.push(f));
  const chunk = framed([Buffer.alloc(12, 7)]);
  r.push(chunk);
  chunk.fill(0);
  assert.deepEqual(got[0], Buffer.alloc(12, 7));
});

test('FrameReader: length 0 or shorter than a header is a framing error', () => {
  for (const len of [0, 1, 11]) {
    const r = new FrameReader(() => assert.fail('no frame expected'));
    const b = Buffer.alloc(2 + len);
    b.writeUInt16BE(len);
    assert.equal(r.push(b), false);
    assert.equal(r.badLength, len);
  }
  // Split inside the prefix, too.
  const r = new FrameReader(() => assert.fail('no frame expected'));
  assert.equal(r.push(Buffer.from([0])), true);
  assert.equal(r.push(Buffer.from([5, 1, 2])), false);
});

test('FrameReader: arbitrary bytes never throw', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 10 }), (chunks) => {
      const r = new FrameReader(() => {});
      for (const c of chunks) if (!r.push(Buffer.from(c))) break;
    }),
  );
});

class Node implements TimeoutNode {
  tqPrev: TimeoutNode | null = null;
  tqNext: TimeoutNode | null = null;
  tqDeadline = -1;
  fired = 0;
  onTimeout(): void {
    this.fired++;
  }
}

test('TimeoutQueue: fires in deadline order, removed nodes never fire, one timer', async () => {
  let now = 0;
  const q = new TimeoutQueue(() => now);
  const nodes = Array.from({ length: 5 }, () => new Node());
  for (const n of nodes) q.add(n, 20);
  q.remove(nodes[2]!);
  q.remove(nodes[0]!);
  assert.equal(q.size, 3);
  now = 20;
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(nodes.map((n) => n.fired), [0, 1, 0, 1, 1]);
  assert.equal(q.size, 0);
  assert.equal(q.first(), null);
  // Re-adding a node moves it to the tail with a new deadline.
  const a = new Node();
  const b = new Node();
  q.add(a, 10);
  q.add(b, 10);
  q.add(a, 10);
  assert.equal(q.first(), b);
  q.remove(a);
  q.remove(b);
  q.remove(b);
  assert.equal(q.size, 0);
});

test('policies: sequential, round robin (starts at 1, rotates), random permutation', () => {
  const out = new Uint8Array(4);
  new SequentialPolicy().order(4, out);
  assert.deepEqual([...out], [0, 1, 2, 3]);
  const rr = new RoundRobinPolicy();
  const seen: number[][] = [];
  for (let i = 0; i < 5; i++) {
    rr.order(4, out);
    seen.push([...out]);
  }
  assert.deepEqual(seen, [
    [1, 0, 2, 3],
    [2, 0, 1, 3],
    [3, 0, 1, 2],
    [0, 1, 2, 3],
    [1, 0, 2, 3],
  ]);
  const rnd = new RandomPolicy();
  const firsts = new Set<number>();
  for (let i = 0; i < 200; i++) {
    rnd.order(4, out);
    assert.deepEqual([...out].sort(), [0, 1, 2, 3]);
    firsts.add(out[0]!);
  }
  assert.equal(firsts.size, 4);
});
