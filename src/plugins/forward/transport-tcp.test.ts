import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TimeoutQueue, type TimeoutNode } from './timeouts.ts';
import { RandomPolicy, RoundRobinPolicy, SequentialPolicy } from './policy.ts';

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
  assert.deepEqual(
    nodes.map((n) => n.fired),
    [0, 1, 0, 1, 1],
  );
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
